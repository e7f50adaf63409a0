"""Checks around controllers written outside the package.

What a run needs to treat someone else's controller safely and to say clearly what went wrong:
whether a controller is the package's own, its import path, the line of the user's code where an
exception was raised, the parameters an instance was built with, and parameter values checked
against the simple type hints of the controller's ``__init__``.
"""

from __future__ import annotations

import inspect
import math
import numbers
import sysconfig
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qubit_sim.control.base import Controller

__all__ = [
    "class_path",
    "controller_label",
    "instance_params",
    "is_package_controller",
    "parameter_type_issues",
    "user_location",
]

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
_LIBRARY_DIRS = tuple(
    str(Path(p).resolve())
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
    if (p := sysconfig.get_paths().get(key))
)


def class_path(controller: Controller) -> str:
    """``"module:Class"`` of a controller instance."""
    cls = type(controller)
    return f"{cls.__module__}:{cls.__qualname__}"


def is_package_controller(controller: Controller) -> bool:
    """Whether a controller (and any controller it wraps as ``inner``) is one of the package's,
    or says it never writes into its observations (:attr:`Controller.direct_observation`).

    Those get the simulator's arrays directly; any other controller gets read-only views.
    """
    seen: set[int] = set()
    current: Any = controller
    while isinstance(current, Controller) and id(current) not in seen:
        seen.add(id(current))
        own = type(current).__module__.startswith("qubit_sim.")
        if not own and not type(current).direct_observation:
            return False
        current = getattr(current, "inner", None)
    return True


def controller_label(controller: Controller) -> str:
    """``'name' (module:Class)``, as error messages name a controller."""
    inner: Any = controller
    while isinstance(getattr(inner, "inner", None), Controller):
        inner = inner.inner
    return f"{getattr(controller, 'name', '?')!r} ({class_path(inner)})"


def user_location(exc: BaseException) -> str:
    """``file:line (in function)`` of the deepest traceback frame of user code.

    User code is anything outside the package, the standard library and installed packages;
    when no frame qualifies (a controller installed as a package), the deepest frame outside
    the package. ``""`` when there is no such frame.
    """
    frames = [
        (frame.f_code.co_filename, line, frame.f_code.co_name)
        for frame, line in _walk(exc.__traceback__)
    ]
    outside = [f for f in frames if not _resolved(f[0]).startswith(_PACKAGE_DIR)]
    user = [f for f in outside if not _resolved(f[0]).startswith(_LIBRARY_DIRS)]
    chosen = user or outside
    if not chosen:
        return ""
    filename, line, function = chosen[-1]
    return f"{filename}:{line} (in {function})"


def _walk(tb: types.TracebackType | None) -> list[tuple[types.FrameType, int]]:
    out = []
    while tb is not None:
        out.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return out


def _resolved(filename: str) -> str:
    try:
        return str(Path(filename).resolve())
    except (OSError, ValueError):
        return filename


# ------------------------------------------------------------------------------------- parameters
def instance_params(controller: Controller) -> tuple[dict[str, Any], list[str]]:
    """The parameters a controller instance was built with, as far as they can be read.

    A ``params`` mapping on the instance is taken as it is. Otherwise each keyword parameter of
    its class's ``__init__`` is read from the attribute of the same name (the usual
    ``self.gain = gain``). Values that are not plain data (numbers, text, booleans, ``None``, and
    lists and mappings of them) cannot be written to the manifest.

    Returns:
        ``(params, unrecorded)``: the parameters found, and the names of those that were not.
    """
    own = getattr(controller, "params", None)
    if isinstance(own, Mapping):
        params, unrecorded = {}, []
        for key, value in own.items():
            plain = _plain(value)
            if plain is _NOT_PLAIN:
                unrecorded.append(str(key))
            else:
                params[str(key)] = plain
        return params, unrecorded
    try:
        signature = inspect.signature(type(controller).__init__)
    except (TypeError, ValueError):
        return {}, []
    params, unrecorded = {}, []
    for name, parameter in list(signature.parameters.items())[1:]:
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            continue
        value = getattr(controller, name, _NOT_PLAIN)
        plain = _plain(value) if value is not _NOT_PLAIN else _NOT_PLAIN
        if plain is _NOT_PLAIN:
            unrecorded.append(name)
        else:
            params[name] = plain
    return params, unrecorded


_NOT_PLAIN = object()


def _plain(value: Any) -> Any:
    """``value`` as JSON data, or :data:`_NOT_PLAIN`."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else _NOT_PLAIN
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        items = [_plain(v) for v in value]
        return _NOT_PLAIN if any(v is _NOT_PLAIN for v in items) else items
    if isinstance(value, Mapping):
        pairs = {str(k): _plain(v) for k, v in value.items()}
        return _NOT_PLAIN if any(v is _NOT_PLAIN for v in pairs.values()) else pairs
    return _NOT_PLAIN


def parameter_type_issues(factory: Any, params: Mapping[str, Any]) -> list[str]:
    """Parameters whose values do not fit the simple type hints of ``factory``'s signature.

    Checked hints: ``float``, ``int``, ``bool``, ``str``, ``Literal[...]``, and unions of these
    with ``None``; a ``float`` takes any real number but a boolean, an ``int`` any integer but a
    boolean. Parameters with any other hint, or none, are not checked.

    Returns:
        One message per misfit, naming the parameter, its value and what it takes.
    """
    hints = _hints(factory)
    issues = []
    for name, value in params.items():
        hint = hints.get(name)
        if hint is None:
            continue
        options = _simple_options(hint)
        if options is None or any(_fits(value, option) for option in options):
            continue
        expected = " or ".join(_describe(option) for option in options)
        issues.append(
            f"{name}={value!r} is {_article(type(value).__name__)}; expected {expected}"
            f"{_text_hint(value, options)}"
        )
    return issues


def _hints(factory: Any) -> dict[str, Any]:
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable forward references: nothing to check against
        return {}


def _simple_options(hint: Any) -> list[Any] | None:
    """The alternatives of a simple hint; ``None`` for a hint that is not checked."""
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        options: list[Any] = []
        for arg in typing.get_args(hint):
            inner = _simple_options(arg)
            if inner is None:
                return None
            options.extend(inner)
        return options
    if origin is typing.Literal:
        return [("literal", typing.get_args(hint))]
    if hint in (float, int, bool, str, type(None)):
        return [hint]
    return None


def _fits(value: Any, option: Any) -> bool:
    if isinstance(option, tuple):
        return any(
            value == choice and isinstance(value, bool) == isinstance(choice, bool)
            for choice in option[1]
        )
    if option is type(None):
        return value is None
    if option is bool:
        return isinstance(value, bool) or type(value).__name__ == "bool_"
    if isinstance(value, bool):
        return False
    if option is float:
        return isinstance(value, numbers.Real)
    if option is int:
        return isinstance(value, numbers.Integral)
    return isinstance(value, option)


def _describe(option: Any) -> str:
    if isinstance(option, tuple):
        return "one of " + ", ".join(repr(choice) for choice in option[1])
    if option is type(None):
        return "None (null)"
    return f"{_article(option.__name__)}"


def _article(name: str) -> str:
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"


def _text_hint(value: Any, options: list[Any]) -> str:
    if not isinstance(value, str):
        return ""
    if float in options or int in options:
        try:
            float(value)
        except ValueError:
            return ""
        return " (a number given as text: YAML reads 1e3 as text, write 1000 or 1.0e+3)"
    return ""

"""Finding controllers outside the package: ``"module:Class"`` import paths and entry points.

An installed distribution registers controllers by name in the entry-point group
:data:`ENTRY_POINT_GROUP` (``name = "module:Class"``); :func:`installed_controllers` reads them
once per process. A ``"module:Class"`` path that a user gives is imported with the current
folder on the import path (at its end), as ``python -m`` and uvicorn import theirs, so that a
controller file is found when the command runs from its folder.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
import os
import sys
from functools import cache
from typing import Any

from qubit_sim.control.base import Controller
from qubit_sim.errors import ControllerError

__all__ = ["ENTRY_POINT_GROUP", "import_controller", "installed_controllers"]

#: Entry-point group in which installed distributions register controllers by name.
ENTRY_POINT_GROUP = "qubit_sim.controllers"


@cache
def installed_controllers() -> dict[str, tuple[str, str]]:
    """``{name: ("module:Class", description)}`` registered by installed distributions.

    Read from the :data:`ENTRY_POINT_GROUP` entry points once per process (installing a
    distribution needs a new process to be seen, as for any entry point). When two entry points
    share a name, the first one found wins.
    """
    found: dict[str, tuple[str, str]] = {}
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in found or not entry.attr:
            continue
        path = f"{entry.module}:{entry.attr}"
        dist = getattr(entry, "dist", None)
        origin = f"from {dist.name} " if dist is not None and dist.name else ""
        found[entry.name] = (path, f"plug-in {origin}({path})")
    return found


def import_controller(path: str, *, search_cwd: bool = False) -> Any:
    """The object ``"module:attr"`` names (a controller class or factory).

    Args:
        path: ``"module:attr"``.
        search_cwd: Put the current folder on the import path first (at its end, so that it
            shadows nothing installed), as ``python -m`` and uvicorn do for the paths they are
            given; for paths a user gives, not for registered ones.

    Raises:
        ControllerError: The module cannot be imported (saying its folder must be importable),
            fails while it is imported (naming the file and line), or has no such attribute
            (with a "did you mean" among its controller classes).
    """
    module_name, _, attr = path.partition(":")
    if search_cwd:
        _cwd_on_path()
    module = _import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        pass
    classes = _controller_classes(module)
    close = difflib.get_close_matches(attr, classes, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = f"; its controllers: {', '.join(classes)}" if classes else ""
    raise ControllerError(
        f"module {module_name!r} has no attribute {attr!r}{hint}{listed}"
    ) from None


def _cwd_on_path() -> None:
    cwd = os.path.abspath(os.getcwd())
    if all(os.path.abspath(entry) != cwd for entry in sys.path):
        sys.path.append(cwd)
        importlib.invalidate_caches()


def _import_module(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not _is_missing(exc, module_name):
            raise ControllerError(
                f"cannot import controller module {module_name!r}: {exc} (a module it imports "
                "is missing; install it or put its folder on PYTHONPATH)"
            ) from None
    except Exception as exc:
        raise _import_failure(module_name, exc) from None
    top = module_name.split(".")[0]
    raise ControllerError(
        f"cannot import controller module {module_name!r}: no module named {top!r} on the import "
        f"path (the current folder {os.getcwd()} included). The folder that holds {top}.py (or "
        f"the package {top}/) must be importable: run from that folder, add it to PYTHONPATH "
        f"(PYTHONPATH=/path/to/folder qubit-sim ...), or install it as a package"
    )


def _is_missing(exc: ModuleNotFoundError, module_name: str) -> bool:
    """Whether ``exc`` says the module itself (or a parent package) is missing, rather than
    something the module imports."""
    missing = exc.name or ""
    return missing == module_name or module_name.startswith(missing + ".")


def _import_failure(module_name: str, exc: Exception) -> ControllerError:
    """An error raised while the module's own code ran, with where it happened."""
    from qubit_sim.control.checks import user_location

    where = user_location(exc)
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f"{exc.filename}:{exc.lineno}"
    at = f" at {where}" if where else ""
    return ControllerError(
        f"importing controller module {module_name!r} failed{at}: {type(exc).__name__}: {exc}"
    )


def _controller_classes(module: Any) -> list[str]:
    """Names of the Controller subclasses a module holds (its own and imported ones)."""
    return sorted(
        name
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, Controller)
        and value is not Controller
        and not name.startswith("_")
    )

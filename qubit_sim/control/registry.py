"""Controller registry: built-in names, installed plug-ins and ``"package.module:Class"`` paths.

Names resolve in this order: the built-ins, then controllers that installed distributions
register in the ``qubit_sim.controllers`` entry-point group (:mod:`qubit_sim.control.plugins`);
anything with a colon is an import path.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from qubit_sim.control.base import Controller
from qubit_sim.control.checks import parameter_type_issues, user_location
from qubit_sim.control.plugins import import_controller, installed_controllers
from qubit_sim.errors import ControllerError, QubitSimError

__all__ = [
    "ControllerRegistry",
    "controller_names",
    "controller_params_for",
    "default_registry",
    "is_import_path",
    "make_controller",
]

Factory = Callable[..., Controller]

# Built-ins are named by import path so listing them costs no import of heavy modules.
_BUILTIN: dict[str, tuple[str, str]] = {
    "uncontrolled": ("qubit_sim.control.builtin:Uncontrolled", "EVs at full power, battery idle"),
    "rule_based": (
        "qubit_sim.control.builtin:RuleBased",
        "battery peak shaving by threshold + PV self-consumption",
    ),
    "qubit_greedy": (
        "qubit_sim.control.stack:QubitGreedy",
        "Qubit greedy EV scheduler + two-pass battery peak shaving, re-planned each slot",
    ),
    "mpc": (
        "qubit_sim.control.stack:Mpc",
        "rolling-horizon site LP (cvxpy/HiGHS), re-solved each slot; oracle or L2 forecasts",
    ),
    "offline_optimal": (
        "qubit_sim.control.stack:OfflineOptimal",
        "site LP over the whole run with perfect foresight, replayed (the lower bound)",
    ),
    "rl_policy": (
        "qubit_sim.control.rl_policy:RlPolicy",
        "trained SB3 policy (model=models/<name>) through its RL env's observation/action mapping",
    ),
}


def is_import_path(name: str) -> bool:
    """True for ``"package.module:Class"``."""
    return ":" in name and not name.startswith(":") and not name.endswith(":")


class ControllerRegistry:
    """Names -> controller factories. Each registry is its own; ``default_registry()`` gives one
    with the built-ins and the installed plug-ins."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str | Factory, str]] = {}

    def register(self, name: str, factory: str | Factory, description: str = "") -> None:
        if name in self._entries:
            raise ControllerError(f"controller {name!r} is already registered")
        self._entries[name] = (factory, description)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        return {name: self._entries[name][1] for name in self.names()}

    def make(self, name: str, params: dict[str, Any] | None = None) -> Controller:
        """Build controller ``name`` (registered, or ``"module:Class"``) with ``params``."""
        params = params or {}
        if name in self._entries:
            factory: Any = self._entries[name][0]
            if isinstance(factory, str):
                factory = import_controller(factory)
        elif is_import_path(name):
            factory = import_controller(name, search_cwd=True)
        else:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ControllerError(
                f"unknown controller {name!r}{hint}; registered: {', '.join(self.names())}; "
                "or give your own as 'module:Class', or register it under a name in the "
                "'qubit_sim.controllers' entry-point group of an installed package"
            )
        mismatch = _parameter_mismatch(factory, params)
        if mismatch:
            raise ControllerError(f"controller {name!r} rejected its parameters: {mismatch}")
        # The package's controllers check their own parameters first, with their own fixes;
        # anyone else's are checked before their code runs with a value it cannot use.
        package = str(getattr(factory, "__module__", "")).startswith("qubit_sim.")
        if not package:
            _check_types(name, factory, params)
        try:
            controller = factory(**params)
        except TypeError as exc:
            raise ControllerError(f"controller {name!r} rejected its parameters: {exc}") from None
        except QubitSimError:
            raise
        except Exception as exc:
            where = user_location(exc)
            at = f" at {where}" if where else ""
            raise ControllerError(
                f"controller {name!r} could not be built{at}: {type(exc).__name__}: {exc}"
            ) from exc
        if package:
            _check_types(name, factory, params)
        if not isinstance(controller, Controller):
            raise ControllerError(
                f"{name!r} built a {type(controller).__name__}, which is not a "
                "qubit_sim.control.Controller"
            )
        return controller


def _check_types(name: str, factory: Any, params: Mapping[str, Any]) -> None:
    misfits = parameter_type_issues(factory, params)
    if misfits:
        raise ControllerError(f"controller {name!r} rejected its parameters: {'; '.join(misfits)}")


def _parameter_mismatch(factory: Any, params: Mapping[str, Any]) -> str:
    """What is wrong with ``params`` for ``factory``'s signature, naming its valid parameters
    (with a "did you mean" for a near miss); ``""`` when they fit or the signature is unknown.

    A ``TypeError`` from the call itself would only say "unexpected keyword argument".
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return ""
    accepted = {
        p.name: p
        for p in signature.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    problems = []
    if not takes_any:
        for key in params:
            if key in accepted:
                continue
            close = difflib.get_close_matches(key, list(accepted), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"no parameter {key!r}{hint}")
    missing = [
        n for n, p in accepted.items() if p.default is inspect.Parameter.empty and n not in params
    ]
    if missing:
        problems.append(f"missing required parameter(s) {', '.join(map(repr, missing))}")
    if not problems:
        return ""
    listed = [
        n if p.default is inspect.Parameter.empty else f"{n}={p.default!r}"
        for n, p in accepted.items()
    ]
    valid = f"its parameters: {', '.join(listed)}" if listed else "it takes no parameters"
    return f"{'; '.join(problems)}; {valid}"


def default_registry() -> ControllerRegistry:
    """A registry with the built-ins and the controllers installed distributions register in
    the ``qubit_sim.controllers`` entry-point group (a built-in name is never replaced)."""
    registry = ControllerRegistry()
    for name, (path, description) in _BUILTIN.items():
        registry.register(name, path, description)
    for name, (path, description) in installed_controllers().items():
        if name not in _BUILTIN:
            registry.register(name, path, description)
    return registry


def controller_names() -> list[str]:
    """Every name :func:`make_controller` knows: built-ins and installed plug-ins."""
    return sorted({*_BUILTIN, *installed_controllers()})


def make_controller(name: str, params: dict[str, Any] | None = None) -> Controller:
    """Build controller ``name`` (built-in, installed plug-in or ``"module:Class"``)."""
    return default_registry().make(name, params)


def controller_params_for(
    name: str,
    scenario_controller: str,
    scenario_params: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The parameters controller ``name`` is built with on a scenario.

    One rule everywhere (``run``, ``compare``): the scenario's own controller (``name`` equals
    its ``controller.name``) starts from the scenario's ``controller.params``; any other
    controller starts from its defaults. ``overrides`` (``--set``) merge over either.

    Args:
        name: The controller to build: a registered name or ``"module:Class"``.
        scenario_controller: The scenario's ``controller.name``.
        scenario_params: The scenario's ``controller.params``.
        overrides: Parameters given for this run; they win over the scenario's.
    """
    base = dict(scenario_params or {}) if name == scenario_controller else {}
    return {**base, **(overrides or {})}

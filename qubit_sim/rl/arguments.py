"""Checks of the RL environments' keyword arguments: unknown names (with a "did you mean"), values
of the wrong kind, and scenario errors that come from an argument rather than from the file.

Each raises :class:`~qubit_sim.errors.ArgumentError`, naming the argument, its value and what is
valid, before anything is built.
"""

from __future__ import annotations

import inspect
import numbers
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qubit_sim.errors import ArgumentError, ConfigIssue, ScenarioError
from qubit_sim.rl.horizon import SPLITS, Horizon
from qubit_sim.rl.reward import RewardWeights

__all__ = [
    "argument_names",
    "horizon_and_weights",
    "as_argument_error",
    "check_argument_values",
    "refuse_unknown_arguments",
]


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


_NUMBER = (_is_real, "a number")
_NUMBER_OR_NONE = (lambda v: v is None or _is_real(v), "a number, or None (null)")
#: What each argument's value must be, checked before anything is built (durations are
#: checked where they are read).
_ARGUMENT_KINDS: dict[str, tuple[Any, str]] = {
    "split": (lambda v: isinstance(v, str), "a string: 'train', 'test' or 'all'"),
    "test_fraction": _NUMBER,
    "split_seed": (_is_int, "a whole number"),
    "forecast": (lambda v: isinstance(v, str), "a string: 'oracle' or 'l2'"),
    "lookahead_h": (
        lambda v: _is_int(v) or (_is_real(v) and float(v).is_integer()),
        "a whole number of hours >= 0",
    ),
    "power_flow": (lambda v: v is None or isinstance(v, bool), "True, False or None (null)"),
    "scenario_seed": (
        lambda v: v is None or (_is_int(v) and v >= 0),
        "a whole number >= 0, or None (null) for site.seed",
    ),
    "overrides": (
        lambda v: v is None or isinstance(v, Mapping),
        "a mapping of scenario values merged over the YAML, or None (null)",
    ),
    "carbon_price_per_kg": _NUMBER,
    "demand_charge_per_kw": _NUMBER_OR_NONE,
    "unmet_penalty_per_kwh": _NUMBER_OR_NONE,
    "voltage_penalty_per_pu_h": _NUMBER,
    "overload_penalty_per_pct_h": _NUMBER,
    "reward_scale": _NUMBER,
}


#: Arguments that take one of a few names.
_ARGUMENT_CHOICES = {"split": SPLITS, "forecast": ("oracle", "l2")}


def argument_names(env_class: type) -> list[str]:
    """Keyword arguments of ``env_class``, in signature order."""
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    signature = inspect.signature(env_class)
    return [p.name for p in signature.parameters.values() if p.kind in named]


def refuse_unknown_arguments(env_class: type, unknown: Mapping[str, Any]) -> None:
    """Raise :class:`~qubit_sim.errors.ArgumentError` naming each keyword of ``unknown`` that
    ``env_class`` does not take, with a "did you mean" and the arguments it takes."""
    from qubit_sim.scenario.loader import suggest

    if not unknown:
        return
    known = argument_names(env_class)
    owner = env_class.__name__
    issues = [
        ConfigIssue(key, f"not an argument of {owner}{suggest(key, known)}; known: {known}")
        for key in unknown
    ]
    raise ArgumentError(issues, f"the arguments of {owner}")


def check_argument_values(owner: str, values: Mapping[str, Any]) -> None:
    """Raise :class:`~qubit_sim.errors.ArgumentError` naming each argument among ``values`` (an
    environment's arguments by name) whose value is of the wrong kind or not one of its names."""
    from qubit_sim.scenario.loader import suggest

    issues = [
        ConfigIssue(name, f"must be {wanted}, found {values[name]!r}")
        for name, (accepts, wanted) in _ARGUMENT_KINDS.items()
        if name in values and not accepts(values[name])
    ]
    for name, choices in _ARGUMENT_CHOICES.items():
        value = values.get(name)
        if isinstance(value, str) and value not in choices:
            hint = suggest(value, choices) or suggest(value.lower(), choices)
            issues.append(ConfigIssue(name, f"unknown {name} {value!r}{hint}; use {list(choices)}"))
    if issues:
        raise ArgumentError(issues, f"the arguments of {owner}")


def _override_paths(overrides: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the values ``overrides`` sets (``{"site": {"step": ..}}`` -> site.step)."""
    paths = []
    for key, value in overrides.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            paths += _override_paths(value, path)
        else:
            paths.append(path)
    return paths


def as_argument_error(
    exc: ScenarioError, env_class: type, overrides: Mapping[str, Any] | None
) -> ScenarioError:
    """``exc`` as an :class:`ArgumentError` when each of its issues is about an argument, or
    about a value ``overrides`` sets (renamed ``overrides.<path>``); else ``exc`` itself."""
    if isinstance(exc, ArgumentError):
        return exc
    owner = env_class.__name__
    names = argument_names(env_class)
    set_paths = _override_paths(overrides or {})
    issues = []
    for issue in exc.issues:
        top = re.split(r"[.\[]", issue.path, maxsplit=1)[0]
        if top in names:
            issues.append(issue)
        elif issue.path and any(_within(issue.path, path) for path in set_paths):
            # Its YAML line would point into the file, which does not hold the value.
            issues.append(ConfigIssue(f"overrides.{issue.path}", issue.message))
        else:
            return exc
    return ArgumentError(issues, f"the arguments of {owner}", exc.source)


def _within(issue_path: str, set_path: str) -> bool:
    return (
        issue_path == set_path
        or issue_path.startswith((f"{set_path}.", f"{set_path}["))
        or set_path.startswith(f"{issue_path}.")
    )


def horizon_and_weights(env_class: type, args: Mapping[str, Any]) -> tuple[Horizon, RewardWeights]:
    """The horizon (``args["horizon"]``, or built from ``args["scenario"]``) and the reward
    weights an environment's arguments ``args`` (its ``__init__``'s locals) describe; the
    chosen ``split`` is checked to hold episodes.

    Raises:
        ArgumentError: no scenario, no file at it, or a scenario problem that comes from an
            argument (an ``overrides`` value, a split too small).
        ScenarioError: a problem in the scenario file itself.
    """
    owner = env_class.__name__
    scenario, horizon = args["scenario"], args["horizon"]
    try:
        if horizon is None:
            if scenario is None:
                issue = ConfigIssue("scenario", "missing; pass scenario= (a YAML path) or horizon=")
                raise ArgumentError([issue], f"the arguments of {owner}")
            if isinstance(scenario, str | Path) and not Path(scenario).is_file():
                issue = ConfigIssue("scenario", f"no scenario file at {str(scenario)!r}")
                raise ArgumentError([issue], f"the arguments of {owner}")
            horizon = Horizon(
                scenario,
                **{
                    name: args[name]
                    for name in (
                        "episode_length",
                        "start_offset",
                        "test_fraction",
                        "split_seed",
                        "lookahead_h",
                        "forecast",
                        "power_flow",
                        "scenario_seed",
                        "overrides",
                    )
                },
            )
        horizon.blocks(args["split"])
        weights = RewardWeights.from_scenario(
            horizon.loaded,
            **{
                name: args[name]
                for name in (
                    "demand_charge_per_kw",
                    "unmet_penalty_per_kwh",
                    "carbon_price_per_kg",
                    "voltage_penalty_per_pu_h",
                    "overload_penalty_per_pct_h",
                    "reward_scale",
                )
            },
        )
    except ScenarioError as exc:
        raise as_argument_error(exc, env_class, args["overrides"]) from None
    return horizon, weights

"""Evaluate a trained policy against the baselines on the same episodes, and write its card.

Every controller runs the same blocks of the horizon (by default the test split) in the same
environment: the policy acts through the environment's ``step``, the baselines
(``uncontrolled``, ``rule_based``) are swapped in as the simulation's controller. KPIs are those
of :func:`qubit_sim.run` (:meth:`~qubit_sim.rl.envs.SiteEnv.episode_kpis`), averaged over
episodes.

The policy's observations are normalised by the scales of its model card (those of its training
horizon), on any scenario, as the ``rl_policy`` controller normalises them. A baseline is built
as ``qubit_sim.run`` builds it: with the scenario's ``controller.params`` when it is the
scenario's own controller (its ``controller.name``), with its defaults otherwise.

Wrong arguments (a folder that holds no model, an unknown split, a scenario whose site gives the
policy other observations) raise :class:`~qubit_sim.errors.ArgumentError` before any episode
runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from qubit_sim.errors import ArgumentError, ConfigIssue, ScenarioError

__all__ = [
    "BASELINES",
    "CARD_KPIS",
    "baseline_params",
    "evaluate_model",
    "load_card",
    "load_policy",
    "write_model_card",
]

#: Baseline controllers every evaluation reports.
BASELINES = ("uncontrolled", "rule_based")
#: KPIs of the card and the CLI table: (key, label, unit).
CARD_KPIS = (
    ("objective_cost", "Objective cost (incl. unmet penalty)", "{currency}"),
    ("total_cost", "Total cost", "{currency}"),
    ("energy_cost", "Energy cost", "{currency}"),
    ("demand_charge", "Demand charge", "{currency}"),
    ("peak_import_kw", "Peak import (one step; demand is billed on 15-min means)", "kW"),
    ("grid_import_kwh", "Grid import", "kWh"),
    ("ev_energy_unmet_kwh", "EV energy unmet", "kWh"),
    ("battery_throughput_kwh", "Battery throughput", "kWh"),
    ("co2_kg", "CO2", "kg"),
)


_MODEL = "the model folder"
_EVALUATE = "the arguments of qubit-sim evaluate"
# Card keys an evaluation or the rl_policy controller cannot do without.
_CARD_KEYS = ("algo", "env", "scenario", "env_kwargs", "scales", "observation_names")


def load_card(folder: str | Path) -> dict[str, Any]:
    """``card.json`` of a model folder.

    Raises:
        ArgumentError: the folder holds no model, or a ``card.json`` that cannot be read (names
            what is missing or wrong).
    """
    from qubit_sim.rl.train import ALGOS

    folder = Path(folder)
    train_one = "pass a folder written by `qubit-sim train`"
    if not folder.exists():
        raise ArgumentError(
            [ConfigIssue("model", f"folder {folder} does not exist; {train_one}")], _MODEL
        )
    if not folder.is_dir():
        issue = ConfigIssue(
            "model", f"{folder} is a file, not a model folder; pass {folder.parent}"
        )
        raise ArgumentError([issue], _MODEL)
    issues = [
        ConfigIssue("model", f"{folder / name} does not exist; {train_one}")
        for name in ("card.json", "policy.zip")
        if not (folder / name).is_file()
    ]
    if issues:
        raise ArgumentError(issues, _MODEL)
    path = folder / "card.json"
    try:
        card = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArgumentError(
            [ConfigIssue("model", f"{path} is not valid JSON ({exc})")], _MODEL
        ) from None
    if not isinstance(card, dict):
        raise ArgumentError([ConfigIssue("model", f"{path} holds no JSON object")], _MODEL)
    missing = [key for key in _CARD_KEYS if key not in card]
    if missing:
        issue = ConfigIssue("model", f"{path} lacks {missing}; retrain the model")
        raise ArgumentError([issue], _MODEL)
    if card["algo"] not in ALGOS:
        issue = ConfigIssue("model", f"{path} names algo {card['algo']!r}; known: {list(ALGOS)}")
        raise ArgumentError([issue], _MODEL)
    return dict(card)


def load_policy(folder: str | Path, card: dict[str, Any] | None = None) -> Any:
    """The SB3 model of a model folder, on the CPU.

    Raises:
        ArgumentError: no model in the folder, or a ``policy.zip`` SB3 cannot load.
    """
    import zipfile

    from qubit_sim.rl.train import algo_class

    card = card or load_card(folder)
    path = Path(folder) / "policy.zip"
    try:
        return algo_class(card["algo"]).load(path, device="cpu")
    except (OSError, EOFError, KeyError, RuntimeError, ValueError, zipfile.BadZipFile) as exc:
        message = f"{path} cannot be loaded as a {card['algo']} policy ({exc}); retrain the model"
        raise ArgumentError([ConfigIssue("model", message)], _MODEL) from None


def baseline_params(name: str, loaded: Any) -> dict[str, Any]:
    """Parameters baseline ``name`` is built with on scenario ``loaded``.

    The rule of ``run`` and ``compare``
    (:func:`~qubit_sim.control.registry.controller_params_for`): the scenario's
    ``controller.params`` when ``name`` is its ``controller.name``, the defaults (``{}``)
    otherwise.
    """
    from qubit_sim.control.registry import controller_params_for

    spec = loaded.spec.controller
    return controller_params_for(name, spec.name, spec.params)


def _episode_with_controller(env: Any, block: int, controller: Any) -> dict[str, Any]:
    """Run ``block`` with ``controller`` in place of the env's agent; the episode's KPIs."""
    agent = env.controller
    env.controller = controller
    try:
        env.reset(options={"block": block})
        env.sim.engine.run_until(env.horizon.episode_steps * env.horizon.dt)
        return dict(env.episode_kpis())
    finally:
        env.controller = agent


def _episode_with_policy(env: Any, block: int, model: Any) -> dict[str, Any]:
    obs, _ = env.reset(options={"block": block})
    done = False
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
    return dict(env.episode_kpis())


def _observation_mismatch(names: list[str], trained: list[str]) -> str:
    """How a site's observation features differ from a policy's (``""``: they do not)."""
    if list(names) == list(trained):
        return ""
    if len(names) != len(trained):
        return f"gives {len(names)} observation features, the policy was trained on {len(trained)}"
    found, wanted = next((a, b) for a, b in zip(names, trained, strict=True) if a != b)
    return f"gives feature {found!r} where the policy was trained on {wanted!r}"


def _check_arguments(
    card: dict[str, Any], scenario: str | Path | None, split: str, episodes: int | None
) -> None:
    from qubit_sim.rl.horizon import SPLITS
    from qubit_sim.scenario.loader import suggest

    issues = []
    if scenario is not None and not Path(scenario).is_file():
        issues.append(ConfigIssue("scenario", f"no scenario file at {str(scenario)!r}"))
    elif scenario is None and not Path(card["scenario"]).is_file():
        issues.append(
            ConfigIssue(
                "scenario",
                f"the policy's scenario {card['scenario']!r} (its card.json) is not here; "
                "pass one with --scenario",
            )
        )
    if split not in SPLITS:
        issues.append(
            ConfigIssue(
                "split", f"unknown split {split!r}{suggest(split, SPLITS)}; use {list(SPLITS)}"
            )
        )
    if episodes is not None and (
        isinstance(episodes, bool) or not isinstance(episodes, int) or episodes <= 0
    ):
        issues.append(
            ConfigIssue(
                "episodes",
                f"must be a whole number > 0, found {episodes!r}; leave it out for the whole split",
            )
        )
    if issues:
        raise ArgumentError(issues, _EVALUATE)


def _mean(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = [key for key, value in rows[0].items() if isinstance(value, int | float)]
    return {key: float(np.mean([row[key] for row in rows])) for key in keys}


def evaluate_model(
    folder: str | Path,
    *,
    scenario: str | Path | None = None,
    split: str = "test",
    episodes: int | None = None,
    env: Any = None,
    card: dict[str, Any] | None = None,
    model: Any = None,
) -> dict[str, Any]:
    """KPIs of the policy and of :data:`BASELINES` on the same episodes of ``split``.

    Args:
        folder: Model folder (``policy.zip`` + ``card.json``).
        scenario: Scenario YAML (default: the one the policy was trained on).
        split: ``"test"``, ``"train"`` or ``"all"``.
        episodes: The first ``episodes`` blocks of the split (default: all of them).
        env / card / model: Already built objects, to skip rebuilding them. The policy sees
            ``env``'s observations normalised by ``card["scales"]`` (set on a given ``env`` for
            the evaluation, then restored).

    Returns:
        ``{"split", "blocks", "currency", "mean": {controller: {kpi: value}},
        "episodes": {controller: [kpis per block]}, "baseline_params": {baseline: params}}``;
        the policy's entry is ``"policy"``.

    Raises:
        ArgumentError: no model in ``folder``, an unknown or empty ``split``, ``episodes`` not
            > 0, no file at ``scenario`` (or at the card's), or a site that gives the policy
            other observation features than it was trained on.
        ScenarioError: a problem in the scenario file.
    """
    from qubit_sim.control.registry import make_controller
    from qubit_sim.rl.train import make_env

    card = card or load_card(folder)
    _check_arguments(card, scenario, split, episodes)
    if env is None:
        env = make_env(card["env"], scenario or card["scenario"], **card["env_kwargs"])
        mismatch = _observation_mismatch(env.observation_names, card["observation_names"])
        if mismatch:
            issue = ConfigIssue(
                "scenario",
                f"{scenario or card['scenario']} {mismatch} ({card['scenario']}); use a site "
                "with the same devices",
            )
            raise ArgumentError([issue], _EVALUATE)
    if model is None:
        model = load_policy(folder, card)
    try:
        blocks = [int(b) for b in env.horizon.blocks(split)]
    except ScenarioError as exc:  # an empty split: this scenario holds too few blocks
        raise ArgumentError(exc.issues, _EVALUATE, exc.source) from None
    if episodes is not None:
        blocks = blocks[:episodes]
    params = {name: baseline_params(name, env.horizon.loaded) for name in BASELINES}
    per: dict[str, list[dict[str, Any]]] = {"policy": []}
    previous_scales = env.feature_scales
    env.set_feature_scales(card["scales"])
    try:
        for block in blocks:
            per["policy"].append(_episode_with_policy(env, block, model))
            for name in BASELINES:
                controller = make_controller(name, dict(params[name]))
                per.setdefault(name, []).append(_episode_with_controller(env, block, controller))
    finally:
        env.set_feature_scales(previous_scales)
    currency = str(per["policy"][0].get("currency", ""))
    keep = [key for key, _, _ in CARD_KPIS]
    return {
        "split": split,
        "blocks": blocks,
        "currency": currency,
        "mean": {name: _mean(rows) for name, rows in per.items()},
        "episodes": {
            name: [{k: float(row[k]) for k in keep if k in row} for row in rows]
            for name, rows in per.items()
        },
        "baseline_params": params,
    }


def _kpi_markdown(evaluation: dict[str, Any]) -> list[str]:
    names = list(evaluation["mean"])
    lines = [
        "| KPI | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for key, label, unit in CARD_KPIS:
        unit = unit.format(currency=evaluation["currency"])
        cells = [f"{evaluation['mean'][name].get(key, float('nan')):.2f}" for name in names]
        lines.append(f"| {label} [{unit}] | " + " | ".join(cells) + " |")
    return lines


def _reproduce_markdown(card: dict[str, Any]) -> list[str]:
    return ["Reproduce:", "", "```", card["command"], "```", ""]


def _baseline_markdown(evaluation: dict[str, Any]) -> list[str]:
    params = evaluation.get("baseline_params")
    if not params:
        return []
    described = [
        f"`{name}` with " + (f"`{json.dumps(value)}`" if value else "its defaults")
        for name, value in params.items()
    ]
    return [
        "Baselines: " + "; ".join(described) + " (a baseline that is the scenario's own "
        "controller runs with its `controller.params`).",
        "",
    ]


def write_model_card(folder: str | Path, card: dict[str, Any]) -> Path:
    """Write ``model_card.md`` from ``card`` (the content of ``card.json``); returns its path."""
    folder = Path(folder)
    weights = "\n".join(f"| {k} | {v} |" for k, v in card["reward_weights"].items())
    hyper = "\n".join(f"| {k} | {v} |" for k, v in card["hyperparameters"].items())
    lines = [
        f"# {card['name']}",
        "",
        f"A {card['algo']} policy for the `{card['env']}` environment "
        f"(`qubit_sim/{card['env']}-v0`) on `{card['scenario']}`.",
        "",
        "Use it as a controller: `qubit-sim run SCENARIO --controller rl_policy "
        f"--set model={folder.as_posix()}`.",
        "",
        "## Training",
        "",
        f"- timesteps: {card['timesteps']} (episode {card['episode_length_s']} s, "
        f"look-ahead {card['lookahead_h']} h, {card['forecast']} forecasts, power flow "
        f"{'on' if card['power_flow'] else 'off'})",
        f"- seed: {card['seed']} (agent, torch and episode draws)",
        f"- environment arguments: `{json.dumps(card['env_kwargs'])}`",
        f"- train blocks: {card['splits']['train']}; test blocks: {card['splits']['test']}",
        f"- training wall time: {card['train_wall_s']} s",
        "",
        *_reproduce_markdown(card),
        "### Reward weights",
        "",
        "| weight | value |",
        "|---|---|",
        weights,
        "",
        "### Hyperparameters",
        "",
        "| parameter | value |",
        "|---|---|",
        hyper,
        "",
        "![training curve](training_curve.png)",
        "",
    ]
    evaluation = card.get("evaluation")
    if evaluation:
        lines += [
            f"## Evaluation ({evaluation['split']} blocks {evaluation['blocks']}, mean per episode)",
            "",
            *_kpi_markdown(evaluation),
            "",
            *_baseline_markdown(evaluation),
        ]
    path = folder / "model_card.md"
    path.write_text("\n".join(lines))
    return path

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
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from qubit_sim.errors import ConfigIssue, ScenarioError

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


def load_card(folder: str | Path) -> dict[str, Any]:
    """``card.json`` of a model folder.

    Raises:
        ScenarioError: the folder holds no model (names what is missing).
    """
    folder = Path(folder)
    issues = [
        ConfigIssue("model", f"{folder / name} does not exist; train one with `qubit-sim train`")
        for name in ("card.json", "policy.zip")
        if not (folder / name).is_file()
    ]
    if issues:
        raise ScenarioError(issues)
    card: dict[str, Any] = json.loads((folder / "card.json").read_text())
    return card


def load_policy(folder: str | Path, card: dict[str, Any] | None = None) -> Any:
    """The SB3 model of a model folder, on the CPU."""
    from qubit_sim.rl.train import algo_class

    card = card or load_card(folder)
    return algo_class(card["algo"]).load(Path(folder) / "policy.zip", device="cpu")


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
    """
    from qubit_sim.control.registry import make_controller
    from qubit_sim.rl.train import make_env

    card = card or load_card(folder)
    if env is None:
        env = make_env(card["env"], scenario or card["scenario"], **card["env_kwargs"])
    if model is None:
        model = load_policy(folder, card)
    blocks = [int(b) for b in env.horizon.blocks(split)]
    if episodes is not None:
        if episodes <= 0:
            raise ScenarioError([ConfigIssue("episodes", f"must be > 0, found {episodes}")])
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

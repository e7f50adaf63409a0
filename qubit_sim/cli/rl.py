"""Reinforcement-learning commands: ``train``, ``evaluate``.

Heavy packages are imported inside the commands, so ``qubit-sim --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from qubit_sim.cli.common import (
    _console,
    _fail_run,
    _fail_scenario,
    app,
)

__all__ = ["evaluate", "train"]


@app.command()
def train(
    env: Annotated[str, typer.Option(help="Environment: SiteDispatch or ChargerFleet.")],
    scenario: Annotated[Path, typer.Option(help="Scenario YAML to train on.")],
    algo: Annotated[str, typer.Option(help="PPO, SAC or TD3.")] = "PPO",
    timesteps: Annotated[int, typer.Option(help="Environment steps (control instants).")] = 50_000,
    seed: Annotated[int, typer.Option(help="Seed of the agent, torch and episode draws.")] = 0,
    test_fraction: Annotated[
        float, typer.Option(help="Share of the episode blocks held out as test days.")
    ] = 0.2,
    name: Annotated[
        str | None,
        typer.Option(help="Model folder name (default: <scenario>-<env>-<algo>-s<seed>)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder the model folder goes in.")] = Path("models"),
    episodes: Annotated[
        int | None, typer.Option(help="Test episodes in the card's evaluation (default: all).")
    ] = None,
    env_kwargs: Annotated[
        str | None,
        typer.Option(
            metavar="JSON",
            help="Environment arguments as a JSON object, replacing the default "
            "{\"power_flow\": false} ('{}' keeps the scenario's power flow), e.g. "
            '\'{"forecast": "l2", "carbon_price_per_kg": 0.1}\'. The test share comes from '
            "--test-fraction.",
        ),
    ] = None,
    hyperparameters: Annotated[
        str | None,
        typer.Option(
            metavar="JSON",
            help="Overrides of the algorithm's default hyperparameters as a JSON object, e.g. "
            '\'{"learning_rate": 0.0001, "policy_kwargs": {"net_arch": [32, 32]}}\'.',
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train an RL policy; writes policy.zip, card.json, model_card.md, training_curve.png."""
    import json

    from qubit_sim.errors import ControllerError, ScenarioError, SimulationError
    from qubit_sim.rl.train import TrainConfig
    from qubit_sim.rl.train import train as train_policy

    def json_object(option: str, text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            _fail_scenario(ValueError(f"{option} is not valid JSON ({exc}): {text!r}"))
        if not isinstance(value, dict):
            kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
            found = kind.get(type(value), "a number")
            _fail_scenario(ValueError(f"{option} must be a JSON object {{...}}, found {found}"))
        return value

    config = TrainConfig(
        scenario=scenario.as_posix(),
        env=env,
        algo=algo,
        timesteps=timesteps,
        seed=seed,
        test_fraction=test_fraction,
        name=name,
        out=out.as_posix(),
        eval_episodes=episodes,
    )
    if env_kwargs is not None:
        config.env_kwargs = json_object("--env-kwargs", env_kwargs)
        if "test_fraction" in config.env_kwargs:
            _fail_scenario(
                ValueError("--env-kwargs must not hold test_fraction; pass --test-fraction")
            )
    if hyperparameters is not None:
        config.hyperparameters = json_object("--hyperparameters", hyperparameters)
    try:
        folder = train_policy(config, progress=not quiet)
    except (ScenarioError, ControllerError) as exc:
        _fail_scenario(exc)
    except SimulationError as exc:
        _fail_run(_console(), "train", exc)

    card = json.loads((folder / "card.json").read_text())
    console = _console()
    console.print(
        f"trained {card['algo']} on {card['env']} in {card['train_wall_s']} s -> [bold]{folder}[/]",
        highlight=False,
    )
    _print_rl_evaluation(console, card["evaluation"])


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Model folder (policy.zip + card.json).")],
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario YAML (default: the one trained on).")
    ] = None,
    episodes: Annotated[
        int | None, typer.Option(help="First N episodes of the split (default: all).")
    ] = None,
    split: Annotated[str, typer.Option(help="test, train or all.")] = "test",
) -> None:
    """Evaluate a trained policy against uncontrolled and rule_based on the same episodes."""
    from qubit_sim.errors import QubitSimError, SimulationError
    from qubit_sim.rl.evaluate import evaluate_model

    try:
        evaluation = evaluate_model(model, scenario=scenario, split=split, episodes=episodes)
    except SimulationError as exc:
        _fail_run(_console(), "evaluate", exc)
    except QubitSimError as exc:
        _fail_scenario(exc)
    _print_rl_evaluation(_console(), evaluation)


def _print_rl_evaluation(console: Any, evaluation: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from qubit_sim.rl.evaluate import CARD_KPIS

    names = list(evaluation["mean"])
    table = Table(
        title=f"KPIs, mean over {evaluation['split']} blocks {evaluation['blocks']}",
        title_justify="left",
    )
    table.add_column("KPI")
    for column in names:
        table.add_column(column, justify="right")
    for key, label, unit in CARD_KPIS:
        unit = unit.format(currency=evaluation["currency"])
        cells = [f"{evaluation['mean'][n].get(key, float('nan')):.2f}" for n in names]
        table.add_row(escape(f"{label} [{unit}]"), *cells)
    console.print(table)

"""Training, evaluation, the ``rl_policy`` controller and the shipped policy."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qubit_sim.errors import ScenarioError
from qubit_sim.rl.train import DEFAULT_HYPERPARAMETERS, TrainConfig, make_env, train

ROOT = Path(__file__).resolve().parents[2]
SMALL_SITE = Path(__file__).parent / "scenarios" / "small_site.yaml"
SHIPPED = ROOT / "models" / "workplace-sitedispatch-ppo"
MODEL_FILES = ("policy.zip", "card.json", "model_card.md", "training_curve.png")
TINY_HYPER = {"n_steps": 128, "batch_size": 64, "n_epochs": 2}


def _tiny_config(out: Path, seed: int = 3) -> TrainConfig:
    return TrainConfig(
        scenario=str(SMALL_SITE),
        timesteps=256,
        seed=seed,
        name="tiny",
        out=str(out),
        hyperparameters=TINY_HYPER,
        eval_episodes=1,
    )


def _tiny(out: Path, seed: int = 3) -> Path:
    return train(_tiny_config(out, seed))


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("models")
    return {
        "a": _tiny(base / "a"),
        "b": _tiny(base / "b"),
        "other_seed": _tiny(base / "c", seed=4),
    }


def _parameters(folder: Path) -> dict[str, np.ndarray]:
    from qubit_sim.rl.evaluate import load_policy

    model = load_policy(folder)
    return {k: v.detach().numpy().copy() for k, v in model.policy.state_dict().items()}


def test_tiny_training_writes_the_model_folder(tiny_runs: dict[str, Path]) -> None:
    folder = tiny_runs["a"]
    for name in MODEL_FILES:
        assert (folder / name).stat().st_size > 0, name
    assert (folder / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = json.loads((folder / "card.json").read_text())
    assert card["env"] == "SiteDispatch" and card["algo"] == "PPO" and card["seed"] == 3
    assert card["hyperparameters"]["n_steps"] == 128
    # PPO plays whole rollouts: 256 asked is 2 rollouts of 128 (the curve ends there too).
    assert card["timesteps_trained"] == 256 and card["training_curve"][-1][0] <= 256
    assert card["reward_weights"]["demand_charge_per_kw"] == 8.0
    # The command passes the tiny hyperparameters; the whole config is there too.
    words = shlex.split(card["command"])
    assert json.loads(words[words.index("--hyperparameters") + 1]) == TINY_HYPER
    assert "--env-kwargs" not in words  # the default environment arguments
    assert "reproducible_by_command" not in card
    assert TrainConfig.from_dict(card["config"]) == replace(
        _tiny_config(folder.parent), name="tiny"
    )
    assert card["training_curve"], "one-day episodes of 96 steps end within 256 steps"
    evaluation = card["evaluation"]
    assert set(evaluation["mean"]) == {"policy", "uncontrolled", "rule_based"}
    assert evaluation["blocks"] == card["splits"]["test"][:1]
    assert evaluation["baseline_params"] == {"uncontrolled": {}, "rule_based": {}}
    for kpis in evaluation["mean"].values():
        assert np.isfinite(kpis["objective_cost"])
    text = (folder / "model_card.md").read_text()
    assert f"Reproduce:\n\n```\n{card['command']}\n```" in text
    assert "TrainConfig" not in text and "training_curve.png" in text
    assert "Objective cost" in text and "uncontrolled" in text
    assert "`rule_based` with its defaults" in text


def test_same_seed_reproduces_bit_identically(tiny_runs: dict[str, Path]) -> None:
    first, second = _parameters(tiny_runs["a"]), _parameters(tiny_runs["b"])
    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name], second[name]), name
    cards = [json.loads((tiny_runs[k] / "card.json").read_text()) for k in ("a", "b")]
    for card in cards:
        card.pop("train_wall_s")
        card.pop("command")  # names its own --out folder
        card["config"].pop("out")
    assert cards[0] == cards[1]
    assert (tiny_runs["a"] / "training_curve.png").read_bytes() == (
        tiny_runs["b"] / "training_curve.png"
    ).read_bytes()
    other = _parameters(tiny_runs["other_seed"])
    assert any(not np.array_equal(first[n], other[n]) for n in first)


def test_rl_policy_controller_matches_the_env(tiny_runs: dict[str, Path]) -> None:
    """Bound to the env's horizon, the controller sees the env's observations and gives the
    same episode as the policy acting through ``env.step`` (physics step = control period, so
    the meter estimate is exact)."""
    from qubit_sim.control.base import Observation
    from qubit_sim.control.rl_policy import RlPolicy
    from qubit_sim.rl.evaluate import load_policy

    folder = tiny_runs["a"]
    card = json.loads((folder / "card.json").read_text())
    env = make_env("SiteDispatch", SMALL_SITE, **card["env_kwargs"])
    model = load_policy(folder)
    block = int(card["splits"]["test"][0])

    env_obs: list[np.ndarray] = []
    obs, _ = env.reset(options={"block": block})
    done = False
    while not done:
        env_obs.append(obs)
        action, _ = model.predict(obs, deterministic=True)
        obs, _, _, done, _ = env.step(action)
    env_kpis = env.episode_kpis()

    seen: list[np.ndarray] = []

    class Recording(RlPolicy):
        def observe(self, obs: Observation) -> np.ndarray:
            features = super().observe(obs)
            seen.append(features)
            return features

    controller = Recording(model=folder)
    controller.bind(env.horizon, env.horizon.plan(block).offset_step)
    agent = env.controller
    env.controller = controller
    env.reset(options={"block": block})
    env.sim.engine.run_until(env.horizon.episode_s)
    ctl_kpis = env.episode_kpis()
    env.controller = agent

    assert len(seen) == len(env_obs) == env.horizon.episode_controls
    np.testing.assert_allclose(np.array(seen), np.array(env_obs), rtol=0, atol=1e-5)
    assert ctl_kpis["objective_cost"] == pytest.approx(env_kpis["objective_cost"], rel=1e-9)
    assert ctl_kpis["battery_throughput_kwh"] == pytest.approx(
        env_kpis["battery_throughput_kwh"], rel=1e-9
    )


def test_rl_policy_rejects_a_missing_model(tmp_path: Path) -> None:
    from qubit_sim.control.registry import make_controller
    from qubit_sim.errors import ControllerError

    with pytest.raises(ControllerError, match="card.json does not exist"):
        make_controller("rl_policy", {"model": str(tmp_path)})


def _test_days(card: dict[str, Any]) -> list[str]:
    from datetime import datetime, timedelta

    start = datetime(2025, 6, 2)
    return [
        (start + timedelta(seconds=int(b) * card["episode_length_s"])).strftime("%Y-%m-%dT%H:%MZ")
        for b in card["splits"]["test"]
    ]


def test_shipped_policy_beats_uncontrolled_on_its_test_days(tmp_path: Path) -> None:
    import qubit_sim
    from qubit_sim.scenario.loader import load_scenario

    card = json.loads((SHIPPED / "card.json").read_text())
    assert card["scenario"] == "scenarios/workplace_pv_battery.yaml"
    days = _test_days(card)
    assert len(days) >= 2
    for day in days[:2]:
        loaded = load_scenario(
            ROOT / card["scenario"], overrides={"site": {"start": day, "duration": "1d"}}
        )
        cost = {}
        for name, params in (("rl_policy", {"model": str(SHIPPED)}), ("uncontrolled", None)):
            result = qubit_sim.run(
                loaded,
                controller=name,
                controller_params=params,
                out=tmp_path / f"{day[:10]}-{name}",
                plots=False,
                settle=False,
            )
            cost[name] = result.kpis["objective_cost"]
        assert cost["rl_policy"] < cost["uncontrolled"], (day, cost)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "qubit_sim", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )


def test_cli_help() -> None:
    for command in ("train", "evaluate"):
        done = _cli(command, "--help")
        assert done.returncode == 0, done.stderr
        assert "--scenario" in done.stdout and ("--env" in done.stdout or "--model" in done.stdout)


def test_cli_train_reproduces_a_card_by_its_command(
    tiny_runs: dict[str, Path], tmp_path: Path
) -> None:
    """The card's command, run in another folder, trains the same model: hyperparameters pass
    through ``--hyperparameters``."""
    from typer.testing import CliRunner

    from qubit_sim.cli import app

    original = json.loads((tiny_runs["a"] / "card.json").read_text())
    words = shlex.split(original["command"])
    assert words[:2] == ["qubit-sim", "train"] and "--hyperparameters" in words
    words[words.index("--out") + 1] = str(tmp_path)
    done = _cli(*words[1:], "--quiet")
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "tiny"
    assert all((folder / name).is_file() for name in MODEL_FILES)
    assert "uncontrolled" in done.stdout and "Objective cost" in done.stdout
    card = json.loads((folder / "card.json").read_text())
    assert card["command"] == shlex.join(words)
    assert TrainConfig.from_dict(card["config"]).command() == card["command"]
    assert card["command"] in (folder / "model_card.md").read_text()
    first, again = _parameters(tiny_runs["a"]), _parameters(folder)
    assert all(np.array_equal(first[name], again[name]) for name in first)
    for each in (original, card):
        for key in ("train_wall_s", "command"):
            each.pop(key)
        each["config"].pop("out")
    assert card == original

    result = CliRunner().invoke(
        app, ["evaluate", "--model", str(folder), "--episodes", "1", "--split", "train"]
    )
    assert result.exit_code == 0, result.output
    assert "policy" in result.output and "rule_based" in result.output

    bad = CliRunner().invoke(app, ["evaluate", "--model", str(tmp_path / "nothing")])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    bad_env = _cli("train", "--env", "Nope", "--scenario", str(SMALL_SITE), "--timesteps", "10")
    assert bad_env.returncode == 2 and "unknown env 'Nope'" in bad_env.stderr


def test_cli_train_passes_env_kwargs(tmp_path: Path) -> None:
    hyperparameters = {"n_steps": 64, "batch_size": 32, "n_epochs": 1}
    env_kwargs = {"power_flow": False, "carbon_price_per_kg": 0.25, "lookahead_h": 3}
    done = _cli(
        "train",
        "--env",
        "SiteDispatch",
        "--scenario",
        str(SMALL_SITE),
        "--timesteps",
        "64",
        "--name",
        "cli",
        "--out",
        str(tmp_path),
        "--episodes",
        "1",
        "--env-kwargs",
        json.dumps(env_kwargs),
        "--hyperparameters",
        json.dumps(hyperparameters),
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    card = json.loads((tmp_path / "cli" / "card.json").read_text())
    assert card["env_kwargs"] == {**env_kwargs, "test_fraction": 0.2}
    assert card["reward_weights"]["carbon_price_per_kg"] == 0.25
    assert card["lookahead_h"] == 3
    assert card["hyperparameters"] == {**DEFAULT_HYPERPARAMETERS["PPO"], **hyperparameters}
    config = TrainConfig.from_dict(card["config"])
    assert config.env_kwargs == env_kwargs and config.hyperparameters == hyperparameters
    assert config.command() == card["command"]


@pytest.mark.parametrize("algo", ["SAC", "TD3"])
def test_too_few_timesteps_for_an_off_policy_learner_are_refused(algo: str) -> None:
    config = TrainConfig(scenario=str(SMALL_SITE), algo=algo, timesteps=300)
    with pytest.raises(ScenarioError, match=r"learning_starts \(500\): no training step"):
        config.check()
    replace(config, hyperparameters={"learning_starts": 100}).check()  # now it trains

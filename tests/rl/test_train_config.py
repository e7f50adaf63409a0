"""``TrainConfig``: every card's command reproduces its run, environment arguments and
hyperparameters included.

Commands are parsed back by the real ``qubit-sim train`` (typer) into the ``TrainConfig`` it
would train; only the training call itself is replaced, to capture that configuration.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

import qubit_sim.rl.train
from qubit_sim.errors import ScenarioError
from qubit_sim.rl.train import ALGOS, ENV_KINDS, TrainConfig

SMALL_SITE = Path(__file__).parent / "scenarios" / "small_site.yaml"


class _Captured(Exception):
    def __init__(self, config: TrainConfig) -> None:
        super().__init__("captured")
        self.config = config


def _capture(config: TrainConfig, **_: object) -> Path:
    raise _Captured(config)


def _invoke(words: list[str]) -> Result:
    """``qubit-sim <words>`` with the training call replaced by :func:`_capture`."""
    from qubit_sim.cli import app

    original = qubit_sim.rl.train.train
    qubit_sim.rl.train.train = _capture  # the CLI imports it when it runs
    try:
        return CliRunner().invoke(app, words)
    finally:
        qubit_sim.rl.train.train = original


def _parsed(command: str) -> TrainConfig:
    """The configuration ``qubit-sim train`` builds from ``command``."""
    words = shlex.split(command)
    assert words[:2] == ["qubit-sim", "train"]
    result = _invoke(words[1:])
    assert isinstance(result.exception, _Captured), result.output
    return result.exception.config


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _same_run(config: TrainConfig) -> TrainConfig:
    """``config`` as the CLI spells it: the default folder name written out, JSON values
    (tuples as lists) and no ``test_fraction`` in ``env_kwargs`` (the field overrides it)."""
    env_kwargs = {k: v for k, v in config.env_kwargs.items() if k != "test_fraction"}
    return replace(
        config,
        name=config.model_name,
        env_kwargs=_json(env_kwargs),
        hyperparameters=_json(config.hyperparameters),
    )


_names = st.text(alphabet="abcxyz-_. 09'\"$", min_size=1, max_size=12).filter(
    lambda name: name.strip(" .") == name and name not in (".", "..")
)
_floats = st.floats(0.0, 10.0, allow_nan=False, allow_infinity=False)
_net_arch = st.lists(st.integers(1, 256), min_size=1, max_size=3)
_env_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "power_flow": st.booleans(),
        "forecast": st.sampled_from(["oracle", "l2"]),
        "carbon_price_per_kg": _floats,
        "episode_length": st.sampled_from(["1d", "12h", 3600, 86400]),
        "lookahead_h": st.integers(0, 24),
        "test_fraction": st.floats(0.0, 0.99),
        "overrides": st.fixed_dictionaries({"site": st.fixed_dictionaries({"name": _names})}),
    },
)
_hyperparameters = st.fixed_dictionaries(
    {},
    optional={
        "learning_rate": st.floats(1e-6, 1e-2),
        "n_steps": st.integers(2, 4096),
        "gamma": st.floats(0.5, 1.0),
        "policy_kwargs": st.fixed_dictionaries(
            {
                "net_arch": _net_arch
                | _net_arch.map(tuple)
                | st.fixed_dictionaries({"pi": _net_arch, "vf": _net_arch})
            }
        ),
    },
)


@settings(max_examples=60, deadline=None)
@given(
    env=st.sampled_from(sorted(ENV_KINDS)),
    algo=st.sampled_from(ALGOS),
    timesteps=st.integers(1, 10**7),
    seed=st.integers(0, 2**31 - 1),
    test_fraction=st.floats(0.0, 0.99),
    name=st.none() | _names,
    out=st.sampled_from(["models", "/tmp/models", "out dir/sub"]),
    eval_episodes=st.none() | st.integers(1, 50),
    env_kwargs=_env_kwargs,
    hyperparameters=_hyperparameters,
)
@example(
    env="SiteDispatch",
    algo="PPO",
    timesteps=512,
    seed=3,
    test_fraction=0.2,
    name=None,
    out="models",
    eval_episodes=None,
    env_kwargs={"power_flow": False},
    hyperparameters={},
)
@example(
    env="SiteDispatch",
    algo="SAC",
    timesteps=512,
    seed=3,
    test_fraction=0.2,
    name="l2",
    out="models",
    eval_episodes=1,
    env_kwargs={},
    hyperparameters={"policy_kwargs": {"net_arch": (32, 32)}},
)
def test_command_parses_back_to_the_config(
    env: str,
    algo: str,
    timesteps: int,
    seed: int,
    test_fraction: float,
    name: str | None,
    out: str,
    eval_episodes: int | None,
    env_kwargs: dict[str, Any],
    hyperparameters: dict[str, Any],
) -> None:
    config = TrainConfig(
        scenario=str(SMALL_SITE),
        env=env,
        algo=algo,
        timesteps=timesteps,
        seed=seed,
        test_fraction=test_fraction,
        name=name,
        out=out,
        eval_episodes=eval_episodes,
        env_kwargs=env_kwargs,
        hyperparameters=hyperparameters,
    )
    command = config.command()
    assert _parsed(command) == _same_run(config)
    # Options appear only when they change something.
    assert ("--hyperparameters" in command) == bool(hyperparameters)
    env_given = {k: v for k, v in env_kwargs.items() if k != "test_fraction"}
    assert ("--env-kwargs" in command) == (env_given != {"power_flow": False})


def test_env_kwargs_replace_the_default_and_leave_test_fraction_to_its_option() -> None:
    # No power_flow key: the scenario's own setting, which the default would have turned off.
    scenario_power_flow = TrainConfig(scenario=str(SMALL_SITE), env_kwargs={})
    assert "--env-kwargs '{}'" in scenario_power_flow.command()
    assert _parsed(scenario_power_flow.command()).env_kwargs == {}
    assert TrainConfig(scenario=str(SMALL_SITE)).env_kwargs == {"power_flow": False}

    overridden = TrainConfig(
        scenario=str(SMALL_SITE),
        env_kwargs={"power_flow": False, "forecast": "l2", "test_fraction": 0.5},
        test_fraction=0.3,
    )
    words = shlex.split(overridden.command())
    assert json.loads(words[words.index("--env-kwargs") + 1]) == {
        "forecast": "l2",
        "power_flow": False,
    }
    parsed = _parsed(overridden.command())
    assert parsed.test_fraction == 0.3 and "test_fraction" not in parsed.env_kwargs

    refused = _invoke(
        ["train", "--env", "SiteDispatch", "--scenario", str(SMALL_SITE)]
        + ["--env-kwargs", '{"test_fraction": 0.5}']
    )
    assert refused.exit_code == 2 and not isinstance(refused.exception, _Captured)
    assert "--env-kwargs must not hold test_fraction; pass --test-fraction" in refused.output


@pytest.mark.parametrize(
    ("option", "text", "message"),
    [
        ("--env-kwargs", '{"forecast": l2}', "--env-kwargs is not valid JSON (Expecting value"),
        ("--env-kwargs", '["forecast", "l2"]', "--env-kwargs must be a JSON object {...}, found"),
        ("--env-kwargs", "", "--env-kwargs is not valid JSON"),
        ("--hyperparameters", "{'gamma': 0.9}", "--hyperparameters is not valid JSON"),
        ("--hyperparameters", "[0.9]", "--hyperparameters must be a JSON object {...}, found"),
        ("--hyperparameters", "0.9", "--hyperparameters must be a JSON object {...}, found"),
    ],
)
def test_bad_json_exits_2_naming_the_option(option: str, text: str, message: str) -> None:
    result = _invoke(
        ["train", "--env", "SiteDispatch", "--scenario", str(SMALL_SITE), option, text]
    )
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, _Captured)
    assert message in result.output
    if text.startswith("["):
        assert "found an array" in result.output


def test_check_names_unknown_or_reserved_settings() -> None:
    good = TrainConfig(
        scenario=str(SMALL_SITE),
        algo="SAC",
        env_kwargs={"power_flow": True, "forecast": "l2", "carbon_price_per_kg": 0.1},
        hyperparameters={"tau": 0.01, "policy_kwargs": {"net_arch": [32, 32]}},
    )
    good.check()
    bad = replace(
        good,
        env_kwargs={"forecst": "l2", "split": "test"},
        hyperparameters={"n_epochs": 3, "seed": 1},  # a PPO setting; the seed is --seed
    )
    with pytest.raises(ScenarioError) as raised:
        bad.check()
    message = str(raised.value)
    for name in ("env_kwargs.forecst", "env_kwargs.split", "hyperparameters.n_epochs"):
        assert name in message
    assert "hyperparameters.seed: not a SAC hyperparameter" in message
    assert (
        "env_kwargs.forecst: not an environment argument (did you mean 'forecast'?); known: "
        "['episode_length'"
    ) in message


def test_unknown_setting_from_the_cli_exits_2_before_training(tmp_path: Path) -> None:
    from qubit_sim.cli import app

    result = CliRunner().invoke(
        app,
        ["train", "--env", "SiteDispatch", "--scenario", str(SMALL_SITE)]
        + ["--out", str(tmp_path), "--hyperparameters", '{"learning_rat": 0.001}'],
    )
    assert result.exit_code == 2
    assert "hyperparameters.learning_rat: not a PPO hyperparameter" in result.output
    assert not any(tmp_path.iterdir())


def test_values_json_cannot_hold_are_named() -> None:
    config = TrainConfig(
        scenario=str(SMALL_SITE), hyperparameters={"policy_kwargs": {"activation_fn": object}}
    )
    with pytest.raises(ScenarioError, match=r"hyperparameters\.policy_kwargs: not expressible"):
        config.command()
    with pytest.raises(ScenarioError, match=r"hyperparameters\.policy_kwargs: not expressible"):
        config.check()


def test_from_dict_gives_the_config_back() -> None:
    config = TrainConfig(
        scenario=str(SMALL_SITE),
        name="l2",
        env_kwargs={"forecast": "l2"},
        hyperparameters={"learning_rate": 1e-4},
    )
    assert TrainConfig.from_dict(_json(config.to_dict())) == config
    with pytest.raises(ScenarioError, match=r"config\.lr: unknown setting") as raised:
        TrainConfig.from_dict({"scenario": "s.yaml", "lr": 1e-3})
    assert "config.scenario" not in str(raised.value)
    with pytest.raises(ScenarioError, match=r"config\.scenario: missing"):
        TrainConfig.from_dict({"seed": 1})

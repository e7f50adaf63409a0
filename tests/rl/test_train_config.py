"""``TrainConfig``: the card's command reproduces the run, or the card says it cannot.

Commands are parsed back by the real ``qubit-sim train`` (typer) into the ``TrainConfig`` it
would train; only the training call itself is replaced, to capture that configuration.
"""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import qubit_sim.rl.train
from qubit_sim.errors import ScenarioError
from qubit_sim.rl.train import ALGOS, DEFAULT_HYPERPARAMETERS, ENV_KINDS, TrainConfig

SMALL_SITE = Path(__file__).parent / "scenarios" / "small_site.yaml"


class _Captured(Exception):
    def __init__(self, config: TrainConfig) -> None:
        super().__init__("captured")
        self.config = config


def _capture(config: TrainConfig, **_: object) -> Path:
    raise _Captured(config)


def _parsed(command: str) -> TrainConfig:
    """The configuration ``qubit-sim train`` builds from ``command``."""
    from qubit_sim.cli import app

    words = shlex.split(command)
    assert words[:2] == ["qubit-sim", "train"]
    original = qubit_sim.rl.train.train
    qubit_sim.rl.train.train = _capture  # the CLI imports it when it runs
    try:
        result = CliRunner().invoke(app, words[1:])
    finally:
        qubit_sim.rl.train.train = original
    assert isinstance(result.exception, _Captured), result.output
    return result.exception.config


def _same_run(config: TrainConfig) -> TrainConfig:
    """``config`` as the CLI spells it: the default folder name written out."""
    return replace(config, name=config.model_name)


_names = st.text(alphabet="abcxyz-_. 09'\"$", min_size=1, max_size=12).filter(
    lambda name: name.strip(" .") == name and name not in (".", "..")
)


@settings(max_examples=40, deadline=None)
@given(
    env=st.sampled_from(sorted(ENV_KINDS)),
    algo=st.sampled_from(ALGOS),
    timesteps=st.integers(1, 10**7),
    seed=st.integers(0, 2**31 - 1),
    test_fraction=st.floats(0.0, 0.99),
    name=st.none() | _names,
    out=st.sampled_from(["models", "/tmp/models", "out dir/sub"]),
    eval_episodes=st.none() | st.integers(1, 50),
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
    )
    assert config.reproducible_by_command
    assert _parsed(config.command()) == _same_run(config)


def test_settings_the_cli_cannot_pass_are_flagged_not_dropped() -> None:
    config = TrainConfig(
        scenario=str(SMALL_SITE),
        timesteps=512,
        seed=3,
        name="l2",
        env_kwargs={"power_flow": False, "forecast": "l2", "carbon_price_per_kg": 0.1},
        hyperparameters={"learning_rate": 1e-4, "n_steps": 384},
    )
    assert not config.reproducible_by_command
    assert config.cli_differences() == [
        "env_kwargs.carbon_price_per_kg",
        "env_kwargs.forecast",
        "hyperparameters.learning_rate",
        "hyperparameters.n_steps",
    ]
    with pytest.raises(ScenarioError) as raised:
        config.command()
    message = str(raised.value)
    for name in config.cli_differences():
        assert name in message
    assert "TrainConfig.from_dict" in message
    # What a card holds instead gives the run back.
    assert TrainConfig.from_dict(config.to_dict()) == config
    # Dropping the settings would train another model: the CLI's parse of what the old command
    # printed (without them) is not this run.
    cli_fields = TrainConfig(scenario=config.scenario, timesteps=512, seed=3, name="l2")
    assert cli_fields.reproducible_by_command
    assert _parsed(cli_fields.command()) != config


def test_default_values_given_again_keep_the_command() -> None:
    config = TrainConfig(
        scenario=str(SMALL_SITE),
        algo="SAC",
        env_kwargs={"power_flow": False, "test_fraction": 0.5},  # test_fraction wins over it
        hyperparameters={"gamma": DEFAULT_HYPERPARAMETERS["SAC"]["gamma"]},
        test_fraction=0.3,
    )
    assert config.cli_differences() == []
    parsed = _parsed(config.command())
    assert parsed.test_fraction == 0.3 and parsed.algo == "SAC"
    # power_flow left to the scenario is not what the CLI trains with.
    assert TrainConfig(scenario="s.yaml", env_kwargs={}).cli_differences() == [
        "env_kwargs.power_flow"
    ]


def test_from_dict_names_unknown_settings() -> None:
    with pytest.raises(ScenarioError, match=r"config\.lr: unknown setting") as raised:
        TrainConfig.from_dict({"scenario": "s.yaml", "lr": 1e-3})
    assert "config.scenario" not in str(raised.value)
    with pytest.raises(ScenarioError, match=r"config\.scenario: missing"):
        TrainConfig.from_dict({"seed": 1})

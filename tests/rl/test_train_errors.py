"""Wrong inputs to ``qubit-sim train`` / ``evaluate`` and to the environments: each message names
the argument, the bad value and what is valid (with a "did you mean" for names), the commands
exit with 2 and no traceback, and nothing is written. Problems in a scenario file still say so,
with its path.

Every wrong input here fails before training; the one model the evaluation cases need is trained
for 64 steps.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

import qubit_sim.rl  # noqa: F401  (registers the environment ids)
from qubit_sim.cli import app
from qubit_sim.errors import ArgumentError, ScenarioError
from qubit_sim.rl.arguments import argument_names
from qubit_sim.rl.envs import SiteDispatchEnv, SiteEnv
from qubit_sim.rl.train import TrainConfig, train

SMALL_SITE = Path(__file__).parent / "scenarios" / "small_site.yaml"
TRAIN_HEAD = "in the arguments of qubit-sim train"
EVALUATE_HEAD = "in the arguments of qubit-sim evaluate"
MODEL_HEAD = "in the model folder"


def _invoke(words: list[str]) -> Result:
    return CliRunner().invoke(app, words)


def _refused(result: Result, *expected: str) -> None:
    """Exit code 2, no traceback, every ``expected`` text in the output."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    for text in expected:
        assert text in result.output, result.output


def _scenario_variant(folder: Path, name: str, old: str, new: str) -> Path:
    text = SMALL_SITE.read_text()
    assert old in text
    path = folder / name
    path.write_text(text.replace(old, new))
    return path


# ------------------------------------------------------------------ train


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            ["--env-kwargs", '{"forcast": "l2"}'],
            "env_kwargs.forcast: not an environment argument (did you mean 'forecast'?); known: [",
        ),
        (
            ["--env-kwargs", '{"split": "test"}'],
            "env_kwargs.split: not an environment argument to set here: train sets it itself",
        ),
        (
            ["--hyperparameters", '{"learning_rat": 0.001}'],
            "hyperparameters.learning_rat: not a PPO hyperparameter (did you mean "
            "'learning_rate'?); known: [",
        ),
        (
            ["--hyperparameters", '{"seed": 1}'],
            "hyperparameters.seed: not a PPO hyperparameter to set here: train sets it itself "
            "(--seed)",
        ),
        (
            ["--hyperparameters", '{"n_epochs": "3"}'],
            "hyperparameters.n_epochs: must be a whole number, found '3'",
        ),
        (
            ["--hyperparameters", '{"learning_rate": "fast"}'],
            "hyperparameters.learning_rate: must be a number, found 'fast'",
        ),
        (
            ["--algo", "TD3", "--hyperparameters", '{"n_epochs": 3}'],
            "hyperparameters.n_epochs: not a TD3 hyperparameter",
        ),
        (["--algo", "ppo"], "algo: unknown algo 'ppo' (did you mean 'PPO'?); use ['PPO', 'SAC'"),
        (["--algo", "DQN"], "algo: unknown algo 'DQN'; use ['PPO', 'SAC', 'TD3']"),
        (["--timesteps", "0"], "timesteps: must be a whole number > 0, found 0"),
        (["--timesteps", "-5"], "timesteps: must be a whole number > 0, found -5"),
        (["--seed", "-1"], "seed: must be a whole number in [0, 2**32), found -1"),
        (["--episodes", "0"], "eval_episodes: must be a whole number > 0 (--episodes), found 0"),
        (["--test-fraction", "1.5"], "test_fraction: must be in [0, 1), found 1.5"),
        (
            ["--env-kwargs", '{"forecast": "12"}'],
            "env_kwargs.forecast: unknown forecast '12'; use ['oracle', 'l2']",
        ),
        (
            ["--env-kwargs", '{"forecast": "L2"}'],
            "env_kwargs.forecast: unknown forecast 'L2' (did you mean 'l2'?)",
        ),
        (
            ["--env-kwargs", '{"lookahead_h": "six"}'],
            "env_kwargs.lookahead_h: must be a whole number of hours >= 0, found 'six'",
        ),
        (
            ["--env-kwargs", '{"scenario_seed": -3}'],
            "env_kwargs.scenario_seed: must be a whole number >= 0",
        ),
        (
            ["--env-kwargs", '{"carbon_price_per_kg": -1}'],
            "env_kwargs.carbon_price_per_kg: must be finite and >= 0, found -1.0",
        ),
        (
            ["--env-kwargs", '{"episode_length": "1x"}'],
            "env_kwargs.episode_length: cannot read duration '1x'",
        ),
    ],
)
def test_train_names_the_wrong_argument(tmp_path: Path, options: list[str], expected: str) -> None:
    out = tmp_path / "models"
    words = ["train", "--env", "SiteDispatch", "--scenario", str(SMALL_SITE), "--out", str(out)]
    result = _invoke([*words, "-q", *options])
    _refused(result, TRAIN_HEAD, expected)
    assert "in scenario" not in result.output
    assert not out.exists()


def test_unknown_env_and_missing_scenario(tmp_path: Path) -> None:
    result = _invoke(["train", "--env", "Sitedispatch", "--scenario", str(tmp_path / "no.yaml")])
    _refused(
        result,
        "2 problems " + TRAIN_HEAD,
        "env: unknown env 'Sitedispatch' (did you mean 'SiteDispatch'?); use ['SiteDispatch', "
        "'ChargerFleet']",
        f"scenario: no scenario file at {str(tmp_path / 'no.yaml')!r}",
    )


def test_values_the_environment_or_sb3_refuse_leave_no_folder(tmp_path: Path) -> None:
    """These need the environment (or the model) built: still refused before training."""
    out = tmp_path / "models"
    base = ["train", "--env", "SiteDispatch", "--scenario", str(SMALL_SITE), "--out", str(out)]
    length = _invoke([*base, "--env-kwargs", '{"episode_length": "6000"}'])
    _refused(
        length,
        TRAIN_HEAD + f" (scenario {SMALL_SITE}",
        "env_kwargs.episode_length: 6000 s must be a positive multiple of the control period "
        "(900 s)",
    )
    override = _invoke([*base, "--env-kwargs", '{"overrides": {"site": {"stepp": "1h"}}}'])
    _refused(
        override,
        TRAIN_HEAD,
        "env_kwargs.overrides.site.stepp: unknown key 'stepp' (did you mean 'step'?)",
    )
    assert "(line" not in override.output  # the file holds no such line
    empty = _invoke([*base, "--test-fraction", "0"])
    _refused(empty, TRAIN_HEAD, "test_fraction: the 'test' split is empty")
    steps = _invoke([*base, "--hyperparameters", '{"n_steps": 0}'])
    _refused(steps, TRAIN_HEAD, 'hyperparameters: PPO refused {"n_steps": 0}: ', "n_steps=0")
    assert not out.exists()


def test_an_out_that_is_a_file(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("")
    result = _invoke(
        ["train", "--env", "SiteDispatch", "--scenario", str(SMALL_SITE), "--out", str(taken)]
    )
    _refused(result, TRAIN_HEAD, f"out: {taken} is a file, not a folder; choose another --out")


def test_a_broken_scenario_file_is_still_a_scenario_problem(tmp_path: Path) -> None:
    broken = _scenario_variant(tmp_path, "broken.yaml", "seed: 5", "sed: 5")
    for env_kwargs in ('{"power_flow": false}', '{"overrides": {"site": {"seed": 3}}}'):
        result = _invoke(
            ["train", "--env", "SiteDispatch", "--scenario", str(broken)]
            + ["--out", str(tmp_path / "models"), "--env-kwargs", env_kwargs]
        )
        _refused(result, f"{broken}: 1 problem in scenario", "site.sed (line ")
        assert "(did you mean 'seed'?)" in result.output
        assert "arguments" not in result.output


def test_from_dict_suggests_the_setting() -> None:
    with pytest.raises(ArgumentError, match=r"config\.timestep: unknown setting \(did you mean "):
        TrainConfig.from_dict({"scenario": str(SMALL_SITE), "timestep": 10})


def test_argument_errors_are_scenario_errors_for_old_callers() -> None:
    config = TrainConfig(scenario=str(SMALL_SITE), timesteps=0)
    with pytest.raises(ScenarioError) as raised:
        config.check()
    assert isinstance(raised.value, ArgumentError)
    assert [issue.path for issue in raised.value.issues] == ["timesteps"]
    assert str(raised.value).startswith("1 problem in the arguments of qubit-sim train\n")


# ------------------------------------------------------------------ environments

_TAKEN = argument_names(SiteEnv)


@settings(max_examples=40, deadline=None)
@given(key=st.from_regex(r"[a-z][a-z_0-9]{0,24}", fullmatch=True).filter(lambda k: k not in _TAKEN))
def test_any_unknown_keyword_is_named(key: str) -> None:
    with pytest.raises(ArgumentError) as raised:
        SiteDispatchEnv(SMALL_SITE, **{key: 1})
    assert [issue.path for issue in raised.value.issues] == [key]
    assert "not an argument of SiteDispatchEnv" in str(raised.value)
    assert "known: ['scenario', 'horizon', 'episode_length'" in str(raised.value)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from([n for n in _TAKEN if len(n) >= 5]), data=st.data())
def test_a_keyword_one_letter_short_is_suggested(name: str, data: st.DataObject) -> None:
    drop = data.draw(st.integers(0, len(name) - 1))
    typo = name[:drop] + name[drop + 1 :]
    with pytest.raises(ArgumentError) as raised:
        SiteDispatchEnv(SMALL_SITE, **{typo: 1})
    assert f"{typo}: not an argument of SiteDispatchEnv (did you mean {name!r}?)" in str(
        raised.value
    )


def test_gymnasium_make_with_a_wrong_keyword() -> None:
    with pytest.raises(ArgumentError) as raised:
        gymnasium.make("qubit_sim/ChargerFleet-v0", scenario=str(SMALL_SITE), forcast="l2")
    assert str(raised.value).startswith("1 problem in the arguments of ChargerFleetEnv\n")
    assert "forcast: not an argument of ChargerFleetEnv (did you mean 'forecast'?)" in str(
        raised.value
    )


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "scenario: missing; pass scenario= (a YAML path) or horizon="),
        ({"scenario": "nowhere.yaml"}, "scenario: no scenario file at 'nowhere.yaml'"),
        (
            {"scenario": str(SMALL_SITE), "split": "tset"},
            "split: unknown split 'tset' (did you mean 'test'?)",
        ),
        (
            {"scenario": str(SMALL_SITE), "power_flow": "no"},
            "power_flow: must be True, False or None (null), found 'no'",
        ),
        (
            {"scenario": str(SMALL_SITE), "overrides": [1]},
            "overrides: must be a mapping of scenario values",
        ),
        (
            {"scenario": str(SMALL_SITE), "test_fraction": "0.2"},
            "test_fraction: must be a number, found '0.2'",
        ),
    ],
)
def test_gymnasium_make_with_a_wrong_value(kwargs: dict[str, object], expected: str) -> None:
    with pytest.raises(ArgumentError) as raised:
        gymnasium.make("qubit_sim/SiteDispatch-v0", **kwargs)
    assert expected in str(raised.value)


def test_an_override_is_named_as_one_but_a_broken_file_is_not(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError) as raised:
        SiteDispatchEnv(SMALL_SITE, overrides={"controller": {"period": "7min"}})
    assert [issue.path for issue in raised.value.issues] == ["overrides.controller.period"]
    assert raised.value.issues[0].line is None
    broken = _scenario_variant(tmp_path, "broken.yaml", "period: 15min", "period: 7min")
    with pytest.raises(ScenarioError) as scenario_error:
        SiteDispatchEnv(broken, overrides={"site": {"seed": 3}})
    assert not isinstance(scenario_error.value, ArgumentError)
    assert f"{broken}: 1 problem in scenario" in str(scenario_error.value)
    assert "controller.period" in str(scenario_error.value)


# ------------------------------------------------------------------ evaluate


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ChargerFleet policy trained for 64 steps on the small site (no evaluation)."""
    config = TrainConfig(
        scenario=str(SMALL_SITE),
        env="ChargerFleet",
        timesteps=64,
        name="cf",
        out=str(tmp_path_factory.mktemp("models")),
        hyperparameters={"n_steps": 64, "batch_size": 32, "n_epochs": 1},
    )
    return train(config, evaluate=False)


def _copy(model: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    return copy


def test_evaluate_names_the_wrong_option(model: Path, tmp_path: Path) -> None:
    cases = [
        (["--split", "tset"], "split: unknown split 'tset' (did you mean 'test'?); use ['train'"),
        (["--episodes", "0"], "episodes: must be a whole number > 0, found 0"),
        (["--scenario", "nowhere.yaml"], "scenario: no scenario file at 'nowhere.yaml'"),
    ]
    for options, expected in cases:
        _refused(_invoke(["evaluate", "--model", str(model), *options]), EVALUATE_HEAD, expected)


def test_evaluate_names_what_is_wrong_with_the_model(model: Path, tmp_path: Path) -> None:
    missing = _invoke(["evaluate", "--model", str(tmp_path / "none")])
    _refused(missing, MODEL_HEAD, f"model: folder {tmp_path / 'none'} does not exist")
    card_file = _invoke(["evaluate", "--model", str(model / "card.json")])
    _refused(card_file, MODEL_HEAD, f"is a file, not a model folder; pass {model}")

    copy = _copy(model, tmp_path)
    card = json.loads((copy / "card.json").read_text())
    (copy / "card.json").write_text(json.dumps({**card, "scenario": "moved.yaml"}))
    moved = _invoke(["evaluate", "--model", str(copy)])
    _refused(moved, EVALUATE_HEAD, "the policy's scenario 'moved.yaml'", "pass one with --scenario")
    (copy / "card.json").write_text(json.dumps({"algo": "PPO"}))
    _refused(_invoke(["evaluate", "--model", str(copy)]), MODEL_HEAD, "lacks ['env', 'scenario'")
    (copy / "card.json").write_text("{")
    _refused(_invoke(["evaluate", "--model", str(copy)]), MODEL_HEAD, "is not valid JSON")
    (copy / "card.json").write_text(json.dumps(card))
    (copy / "policy.zip").write_bytes(b"not a zip")
    _refused(
        _invoke(["evaluate", "--model", str(copy), "--episodes", "1"]),
        MODEL_HEAD,
        f"model: {copy / 'policy.zip'} cannot be loaded as a PPO policy",
    )


def test_evaluate_on_a_site_with_other_devices(model: Path, tmp_path: Path) -> None:
    fewer = _scenario_variant(tmp_path, "fewer.yaml", "count: 5", "count: 4")
    result = _invoke(["evaluate", "--model", str(model), "--scenario", str(fewer)])
    _refused(
        result,
        EVALUATE_HEAD,
        f"scenario: {fewer} gives 56 observation features, the policy was trained on 60",
        "use a site with the same devices",
    )
    renamed = _scenario_variant(tmp_path, "renamed.yaml", "id: bay", "id: dock")
    result = _invoke(["evaluate", "--model", str(model), "--scenario", str(renamed)])
    _refused(result, EVALUATE_HEAD, "gives feature 'occupied_dock")


def test_the_batched_environments_name_a_wrong_keyword() -> None:
    with pytest.raises(ArgumentError) as raised:
        gymnasium.make_vec(
            "qubit_sim/SiteDispatch-v0", num_envs=2, scenario=str(SMALL_SITE), forcast="l2"
        )
    message = str(raised.value)
    assert "forcast: not an argument of SiteDispatchVectorEnv (did you mean 'forecast'?)" in message
    with pytest.raises(ArgumentError) as raised:
        gymnasium.make_vec(
            "qubit_sim/ChargerFleet-v0", num_envs=2, scenario=str(SMALL_SITE), split="tset"
        )
    assert "split: unknown split 'tset' (did you mean 'test'?)" in str(raised.value)
    # The single environments' checks of the scenario and its overrides hold here too.
    from qubit_sim.rl.vector import SiteDispatchVectorEnv

    with pytest.raises(ArgumentError, match="scenario: missing; pass scenario="):
        SiteDispatchVectorEnv(num_envs=2)
    with pytest.raises(ArgumentError) as raised:
        SiteDispatchVectorEnv(
            scenario=str(SMALL_SITE), num_envs=2, overrides={"site": {"stepp": "5min"}}
        )
    assert "overrides.site.stepp" in str(raised.value)

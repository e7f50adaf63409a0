"""``qubit-sim evaluate``: the policy's observations and the baselines' parameters.

The shipped model (trained on ``workplace_pv_battery``) is evaluated on variants of the small
test site: a bigger one, whose own feature scales differ from those of the card, and one whose
own controller is ``rule_based`` with parameters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import qubit_sim
from qubit_sim.control.base import Observation
from qubit_sim.control.rl_policy import RlPolicy
from qubit_sim.errors import ScenarioError
from qubit_sim.rl.evaluate import baseline_params, evaluate_model, load_card, load_policy
from qubit_sim.rl.horizon import Horizon
from qubit_sim.rl.train import make_env
from qubit_sim.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SMALL_SITE = Path(__file__).parent / "scenarios" / "small_site.yaml"
SHIPPED = ROOT / "models" / "workplace-sitedispatch-ppo"
THRESHOLD_KW = 40.0


class _Recording:
    """The policy, keeping a copy of every observation it is asked to act on."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.seen: list[np.ndarray] = []

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> Any:
        self.seen.append(np.array(obs, copy=True))
        return self.model.predict(obs, deterministic=deterministic)


class _RecordingPolicy(RlPolicy):
    def __init__(self, model: str | Path) -> None:
        super().__init__(model)
        self.seen: list[np.ndarray] = []

    def observe(self, obs: Observation) -> np.ndarray:
        features = super().observe(obs)
        self.seen.append(features.copy())
        return features


@pytest.fixture(scope="module")
def shipped() -> tuple[dict[str, Any], Any]:
    card = load_card(SHIPPED)
    return card, load_policy(SHIPPED, card)


def _variant(folder: Path, name: str, change: Any) -> Path:
    spec = yaml.safe_load(SMALL_SITE.read_text())
    spec["site"]["name"] = f"rl_small_site_{name}"
    change(spec)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``big``: three times the building load, dearer peak hours and dirtier grid power;
    ``rule_based``: the small site with its own controller ``rule_based`` at a low threshold."""

    def bigger(spec: dict[str, Any]) -> None:
        spec["site"]["grid_connection"]["import_kw"] = 400
        spec["assets"]["loads"][0]["annual_kwh"] = 360_000
        spec["tariff"]["energy_rates"][1]["rate"] = 0.48
        carbon = spec["tariff"]["carbon"]
        carbon["hourly_g_per_kwh"] = [1.5 * value for value in carbon["hourly_g_per_kwh"]]

    def rule_based(spec: dict[str, Any]) -> None:
        spec["controller"] = {
            "name": "rule_based",
            "period": "15min",
            "params": {"threshold_kw": THRESHOLD_KW},
        }

    folder = tmp_path_factory.mktemp("scenarios")
    return {
        "big": _variant(folder, "big", bigger),
        "rule_based": _variant(folder, "rb", rule_based),
    }


def _evaluate_first_block(card: dict[str, Any], model: Any, scenario: Path) -> dict[str, Any]:
    """The shipped policy evaluated on the scenario's first block, its observations kept."""
    recording = _Recording(model)
    evaluation = evaluate_model(
        SHIPPED, scenario=scenario, split="all", episodes=1, card=card, model=recording
    )
    assert evaluation["blocks"] == [0]
    return {"evaluation": evaluation, "seen": np.array(recording.seen)}


def test_evaluate_feeds_the_policy_what_rl_policy_feeds_it(
    shipped: tuple[dict[str, Any], Any], variants: dict[str, Path], tmp_path: Path
) -> None:
    """On a scenario whose own scales are not the card's, `evaluate` and the `rl_policy`
    controller (in a plain run of the same day) give the policy the same observations."""
    card, model = shipped
    by_evaluate = _evaluate_first_block(card, model, variants["big"])["seen"]
    controller = _RecordingPolicy(SHIPPED)
    qubit_sim.run(
        variants["big"],
        controller=controller,
        until_s=int(card["episode_length_s"]),
        out=tmp_path / "run",
        plots=False,
        settle=False,
    )
    own = controller.horizon.scales
    # The test means something only if the scenario's own scales are not the card's.
    for key in ("price", "carbon", "power_kw"):
        assert abs(own[key] / card["scales"][key] - 1.0) > 0.1, (key, own, card["scales"])

    by_controller = np.array(controller.seen)
    assert by_evaluate.shape == by_controller.shape == (96, len(card["observation_names"]))
    n_exo = controller.layout.n_exo
    # Prices, carbon, load and PV (and time): bit for bit.
    assert np.array_equal(by_evaluate[:, :n_exo], by_controller[:, :n_exo])
    assert np.abs(by_evaluate[:, n_exo - 14 : n_exo]).max() > 0.01, "load and PV features are not 0"
    # State features: the controller estimates the site meter (1 W battery setpoints on the
    # wire), so site_power_prev and peak_so_far agree to that rounding.
    np.testing.assert_allclose(by_evaluate, by_controller, rtol=0, atol=1e-5)


def test_feature_scales_of_the_horizon_change_no_observation(small_horizon: Horizon) -> None:
    """A model evaluated on its own training scenario sees exactly what it was trained on."""
    env = make_env("SiteDispatch", horizon=small_horizon)
    other = make_env("SiteDispatch", horizon=small_horizon)
    other.set_feature_scales(small_horizon.scales)
    assert other.feature_scales == small_horizon.scales and env.feature_scales is None
    actions = np.random.default_rng(2).uniform(-1, 1, (96, 2))
    for environment in (env, other):
        environment.reset(options={"block": 1})
    for action in actions:
        first, *_ = env.step(action)
        second, *_ = other.step(action)
        assert np.array_equal(first, second)


def test_card_scales_renormalise_the_features(small_horizon: Horizon) -> None:
    env = make_env("SiteDispatch", horizon=small_horizon)
    names = env.observation_names
    plain, _ = env.reset(options={"block": 2})
    scales = small_horizon.scales
    doubled = {"price": 2 * scales["price"], "carbon": scales["carbon"], "power_kw": 4.0 * 1e3}
    env.set_feature_scales(doubled)
    assert env.power_scale_kw == 4000.0
    scaled, _ = env.reset(options={"block": 2})
    ratio = {
        "price": 0.5,
        "load": scales["power_kw"] / 4000.0,
        "pv": scales["power_kw"] / 4000.0,
        "carbon": 1.0,
        "hour_sin": 1.0,
    }
    for name, factor in ratio.items():
        i = names.index(name)
        assert scaled[i] == pytest.approx(plain[i] * factor, rel=1e-6), name
    env.set_feature_scales(None)
    again, _ = env.reset(options={"block": 2})
    assert np.array_equal(again, plain)
    with pytest.raises(ScenarioError, match=r"scales\.power_kw: must be a positive number"):
        env.set_feature_scales({"price": 1.0, "carbon": 1.0, "power_kw": 0.0})
    with pytest.raises(ScenarioError, match=r"scales\.carbon"):
        env.set_feature_scales({"price": 1.0, "power_kw": 1.0})


def test_baseline_params_follow_the_scenario_controller(variants: dict[str, Path]) -> None:
    workplace = load_scenario(ROOT / "scenarios" / "workplace_pv_battery.yaml")
    assert baseline_params("rule_based", workplace) == {"threshold_kw": 120}
    assert baseline_params("uncontrolled", workplace) == {}
    small = load_scenario(SMALL_SITE)  # its controller is uncontrolled, without params
    assert baseline_params("rule_based", small) == {}
    assert baseline_params("rule_based", load_scenario(variants["rule_based"])) == {
        "threshold_kw": THRESHOLD_KW
    }


def test_evaluate_builds_the_scenario_controller_with_its_params(
    shipped: tuple[dict[str, Any], Any], variants: dict[str, Path], tmp_path: Path
) -> None:
    card, model = shipped
    rule_based_site = variants["rule_based"]
    evaluation = _evaluate_first_block(card, model, rule_based_site)["evaluation"]
    plain = _evaluate_first_block(card, model, SMALL_SITE)["evaluation"]
    assert evaluation["baseline_params"] == {
        "uncontrolled": {},
        "rule_based": {"threshold_kw": THRESHOLD_KW},
    }
    assert plain["baseline_params"] == {"uncontrolled": {}, "rule_based": {}}

    def run(controller_params: dict[str, Any] | None) -> dict[str, Any]:
        result = qubit_sim.run(
            rule_based_site,
            controller="rule_based",
            controller_params=controller_params,
            until_s=int(card["episode_length_s"]),
            out=tmp_path / f"run-{len(controller_params or {})}",
            plots=False,
            settle=False,
        )
        return result.kpis

    scenario_params = run({"threshold_kw": THRESHOLD_KW})
    (evaluated,) = evaluation["episodes"]["rule_based"]
    for key in ("objective_cost", "peak_import_kw", "battery_throughput_kwh"):
        assert evaluated[key] == pytest.approx(scenario_params[key], rel=1e-9), key
    # On the plain small site (whose controller is uncontrolled) rule_based runs with its
    # defaults, and the threshold makes a difference.
    (default,) = plain["episodes"]["rule_based"]
    assert abs(default["battery_throughput_kwh"] - evaluated["battery_throughput_kwh"]) > 1.0
    # The controller section changes nothing else.
    for name in ("policy", "uncontrolled"):
        assert evaluation["episodes"][name] == plain["episodes"][name], name
    json.dumps(evaluation)  # it goes into card.json

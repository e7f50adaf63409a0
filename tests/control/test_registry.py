"""The controller registry and the built-in controllers."""

from __future__ import annotations

import numpy as np
import pytest

from qubit_sim.control import Controller, Observation, Setpoints, SiteInfo, make_controller
from qubit_sim.control.builtin import RuleBased
from qubit_sim.control.registry import ControllerRegistry, default_registry
from qubit_sim.errors import ControllerError


def site_info(n_chargers: int = 2, n_batteries: int = 1) -> SiteInfo:
    return SiteInfo(
        step_s=60,
        period_s=60,
        charger_ids=tuple(f"c{i}" for i in range(n_chargers)),
        battery_ids=tuple(f"b{i}" for i in range(n_batteries)),
        pv_ids=("pv1",),
        load_ids=(),
        charger_max_kw=np.full(n_chargers, 22.0),
        charger_efficiency=np.full(n_chargers, 0.97),
        battery_capacity_kwh=np.full(n_batteries, 100.0),
        battery_charge_max_kw=np.full(n_batteries, 50.0),
        battery_discharge_max_kw=np.full(n_batteries, 50.0),
        import_limit_kw=100.0,
        export_limit_kw=50.0,
        tz="UTC",
    )


def observation(load_kw: float, ev_kw: float, pv_kw: float) -> Observation:
    return Observation(
        t_s=0, k=0, price_per_kwh=0.2, export_price_per_kwh=0.05, carbon_g_per_kwh=300,
        load_kw=load_kw, pv_available_kw=np.array([pv_kw]),
        charger_connected=np.array([True, False]), charger_ev_max_kw=np.array([ev_kw, 0.0]),
        charger_e_needed_kwh=np.array([10.0, 0.0]), charger_departure_s=np.array([3600, -1]),
        battery_soc=np.array([0.5]), battery_p_min_kw=np.array([-40.0]),
        battery_p_max_kw=np.array([30.0]),
    )


class MyController(Controller):
    name = "mine"

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = gain

    def act(self, obs: Observation) -> Setpoints:
        return Setpoints.unlimited(2, 1, 1)


def test_builtins_are_registered() -> None:
    assert {"uncontrolled", "rule_based"} <= set(default_registry().names())


def test_import_path_controllers_get_their_parameters() -> None:
    controller = make_controller(f"{__name__}:MyController", {"gain": 3.0})
    assert isinstance(controller, MyController) and controller.gain == 3.0


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("rule_base", {}, "did you mean 'rule_based'"),
        ("no.such.module:Thing", {}, "cannot import controller module"),
        (f"{__name__}:Missing", {}, "has no attribute 'Missing'"),
        ("rule_based", {"threshold": 5}, "rejected its parameters"),
        (f"{__name__}:site_info", {}, "is not a qubit_sim.control.Controller"),
    ],
)
def test_bad_controllers_say_why(name: str, params: dict, message: str) -> None:
    with pytest.raises(ControllerError, match=message):
        make_controller(name, params)


def test_registry_refuses_double_registration() -> None:
    registry = ControllerRegistry()
    registry.register("x", MyController)
    with pytest.raises(ControllerError, match="already registered"):
        registry.register("x", MyController)


def test_rule_based_shaves_peaks_and_soaks_up_surplus() -> None:
    controller = RuleBased(threshold_kw=60.0)
    controller.reset(site_info(), np.random.default_rng(0))
    # 50 load + 22 EV - 0 PV = 72 > 60: discharge 12 kW
    assert controller.act(observation(50, 22, 0)).battery_kw == pytest.approx([-12.0])
    # 10 load + 0 EV - 40 PV = -30: charge 30 kW
    assert controller.act(observation(10, 0, 40)).battery_kw == pytest.approx([30.0])
    # surplus beyond the battery's feasible range is capped by it
    assert controller.act(observation(0, 0, 100)).battery_kw == pytest.approx([30.0])
    # peak beyond the discharge range is capped too
    assert controller.act(observation(200, 0, 0)).battery_kw == pytest.approx([-40.0])
    # in between: idle
    assert controller.act(observation(30, 0, 0)).battery_kw == pytest.approx([0.0])


def test_rule_based_default_threshold_is_80pct_of_limit() -> None:
    controller = RuleBased()
    controller.reset(site_info(), np.random.default_rng(0))
    assert controller.threshold_kw == pytest.approx(80.0)

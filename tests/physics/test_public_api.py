"""The public names of qubit_sim.physics and qubit_sim.agents are pinned and importable."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "qubit_sim.physics": {
        "BatteryStep",
        "EvStep",
        "available_weather",
        "battery_limits_kw",
        "battery_step",
        "charger_grid_power_kw",
        "ev_charge_step",
        "ev_max_power_kw",
        "load_from_csv",
        "profile_at",
        "pv_ac_power_kw",
        "scale_profile",
        "simbench_load_names",
        "simbench_load_profile",
        "tmy_weather",
        "weather_from_csv",
    },
    "qubit_sim.agents": {
        "Behaviour",
        "DayPattern",
        "Driver",
        "EvPopulation",
        "SessionTable",
        "VehicleType",
        "available_behaviours",
        "behaviour_preset",
        "default_vehicle_types",
    },
}


@pytest.mark.parametrize("package", sorted(EXPECTED))
def test_public_names_are_pinned_and_resolve(package: str) -> None:
    module = importlib.import_module(package)
    assert set(module.__all__) == EXPECTED[package]
    for name in module.__all__:
        assert getattr(module, name) is not None
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018

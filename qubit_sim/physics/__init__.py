"""Pure, vectorised physics: batteries, EV charging, PV (pvlib) and building loads.

Every function takes numpy arrays over devices (or scalars) and keeps no state. Modules that need
pandas or pvlib are imported on first use of one of their names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
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
]

if TYPE_CHECKING:  # pragma: no cover
    from qubit_sim.physics.battery import BatteryStep, battery_limits_kw, battery_step
    from qubit_sim.physics.ev import (
        EvStep,
        charger_grid_power_kw,
        ev_charge_step,
        ev_max_power_kw,
    )
    from qubit_sim.physics.load import (
        load_from_csv,
        profile_at,
        scale_profile,
        simbench_load_names,
        simbench_load_profile,
    )
    from qubit_sim.physics.pv import (
        available_weather,
        pv_ac_power_kw,
        tmy_weather,
        weather_from_csv,
    )

_MODULE_OF = {
    "BatteryStep": "battery",
    "battery_limits_kw": "battery",
    "battery_step": "battery",
    "EvStep": "ev",
    "charger_grid_power_kw": "ev",
    "ev_charge_step": "ev",
    "ev_max_power_kw": "ev",
    "load_from_csv": "load",
    "profile_at": "load",
    "scale_profile": "load",
    "simbench_load_names": "load",
    "simbench_load_profile": "load",
    "available_weather": "pv",
    "pv_ac_power_kw": "pv",
    "tmy_weather": "pv",
    "weather_from_csv": "pv",
}


def __getattr__(name: str) -> Any:
    if name in _MODULE_OF:
        module = importlib.import_module(f"qubit_sim.physics.{_MODULE_OF[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'qubit_sim.physics' has no attribute {name!r}")

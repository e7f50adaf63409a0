"""Stateful devices built on the physics functions, as struct-of-arrays."""

from qubit_sim.assets.fleet import ChargerFleet, assign_chargers
from qubit_sim.assets.storage import BatteryBank

__all__ = ["BatteryBank", "ChargerFleet", "assign_chargers"]

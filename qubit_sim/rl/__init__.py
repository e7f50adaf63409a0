"""Gymnasium environments on the site simulator.

Importing this package registers two ids with gymnasium (string entry points: the environment
modules load on the first ``make``)::

    import gymnasium
    import qubit_sim.rl  # noqa: F401  (registers the ids)

    env = gymnasium.make("qubit_sim/SiteDispatch-v0", scenario="scenarios/workplace_pv_battery.yaml")
    envs = gymnasium.make_vec("qubit_sim/ChargerFleet-v0", num_envs=64, scenario=...)

Without importing it first, name the module in the id, which gymnasium imports for you::

    env = gymnasium.make("qubit_sim.rl:qubit_sim/SiteDispatch-v0", scenario=...)

gymnasium 1.x has no plugin entry points (they were removed in 1.0), so one of the two is needed;
``import qubit_sim`` does not register, because that would import gymnasium (several times the
cost of ``import qubit_sim``) for every user of the simulator.

``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")`` (the default for these ids)
gives the native batched environments of :mod:`qubit_sim.rl.vector`; ``"sync"``/``"async"``
give gymnasium's wrappers around single environments.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "ENV_IDS",
    "ActionController",
    "ActionReplay",
    "ChargerFleetEnv",
    "ChargerFleetVectorEnv",
    "EpisodeCosts",
    "Horizon",
    "SiteDispatchEnv",
    "SiteDispatchVectorEnv",
    "register_envs",
]

if TYPE_CHECKING:  # pragma: no cover
    from qubit_sim.rl.actions import ActionController, ActionReplay
    from qubit_sim.rl.envs import ChargerFleetEnv, SiteDispatchEnv
    from qubit_sim.rl.horizon import Horizon
    from qubit_sim.rl.vector import ChargerFleetVectorEnv, SiteDispatchVectorEnv
    from qubit_sim.rl.wrappers import EpisodeCosts

#: Registered ids -> (entry point, vector entry point).
ENV_IDS: dict[str, tuple[str, str]] = {
    "qubit_sim/SiteDispatch-v0": (
        "qubit_sim.rl.envs:SiteDispatchEnv",
        "qubit_sim.rl.vector:SiteDispatchVectorEnv",
    ),
    "qubit_sim/ChargerFleet-v0": (
        "qubit_sim.rl.envs:ChargerFleetEnv",
        "qubit_sim.rl.vector:ChargerFleetVectorEnv",
    ),
}

_LAZY = {
    "ActionController": "qubit_sim.rl.actions",
    "ActionReplay": "qubit_sim.rl.actions",
    "ChargerFleetEnv": "qubit_sim.rl.envs",
    "SiteDispatchEnv": "qubit_sim.rl.envs",
    "Horizon": "qubit_sim.rl.horizon",
    "ChargerFleetVectorEnv": "qubit_sim.rl.vector",
    "SiteDispatchVectorEnv": "qubit_sim.rl.vector",
    "EpisodeCosts": "qubit_sim.rl.wrappers",
}


def register_envs() -> None:
    """Register :data:`ENV_IDS` with gymnasium (ids already registered are left alone)."""
    from gymnasium.envs.registration import register, registry

    for env_id, (entry_point, vector_entry_point) in ENV_IDS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, vector_entry_point=vector_entry_point)


register_envs()


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qubit_sim.rl' has no attribute {name!r}")

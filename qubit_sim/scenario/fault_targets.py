"""Which devices a ``faults:`` entry names: the site's device ids per kind, and what is wrong
with the names an entry gives. The loader checks every entry with :func:`fault_devices` (each
problem with its YAML line) and the fault planner (:mod:`qubit_sim.scenario.faults`) plans from
the same function, so a scenario that validates also plans.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from qubit_sim.scenario import schema

__all__ = ["FAULT_DEVICE_KINDS", "device_ids", "fault_devices"]

#: Device kinds each fault kind applies to.
FAULT_DEVICE_KINDS: dict[str, tuple[str, ...]] = {
    "link_drop": ("charger",),
    "latency": ("charger", "battery", "pv"),
    "message_loss": ("charger", "battery", "pv"),
    "device_fault": ("charger", "battery", "pv"),
    "modbus_timeout": ("battery", "pv"),
    "meter_freeze": ("charger", "battery", "pv"),
}

_WHY_NOT = {
    "link_drop": "link_drop takes charger ids (a battery or PV link fails as modbus_timeout)",
    "modbus_timeout": "modbus_timeout takes battery or PV ids (a charger speaks OCPP: use "
    "link_drop)",
}
_DEVICE_NAMES = {"charger": "charger", "battery": "battery", "pv": "PV plant"}


def device_ids(assets: schema.AssetsSpec) -> dict[str, list[str]]:
    """The device ids of ``assets`` per kind (``charger``, ``battery``, ``pv``, ``load``), as
    the site builder names them and the results columns show them.

    A group of ``count`` devices (chargers: ``count * connectors`` charging points) with an
    ``id`` is numbered ``id1``, ``id2``, ...; one device keeps its ``id``; devices without one
    are numbered by kind (``ac``, ``dc``, ``battery``, ``pv``, ``load``) after the ids in use.
    """
    # The builder's own naming function: the ids here are those of the built site by
    # construction (build imports this module, hence the import here).
    from qubit_sim.scenario.build import _ids

    used = {
        entry.id
        for section in ("chargers", "batteries", "pv", "loads")
        for entry in getattr(assets, section)
        if entry.id
    }
    ids: dict[str, list[str]] = {"charger": [], "battery": [], "pv": [], "load": []}
    for charger in assets.chargers:
        prefix = "dc" if charger.kind == "dc" else "ac"
        ids["charger"] += _ids(prefix, charger.id, charger.count * charger.connectors, used)
    for battery in assets.batteries:
        ids["battery"] += _ids("battery", battery.id, 1, used)
    for plant in assets.pv:
        ids["pv"] += _ids("pv", plant.id, plant.count, used)
    for load in assets.loads:
        ids["load"] += _ids("load", load.id, load.count, used)
    return ids


def _unknown(device_id: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(device_id, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(known[:6]) + (", ..." if len(known) > 6 else "")
    return f"unknown {what} id {device_id!r}{hint} (the site's {what}s: {listed or 'none'})"


def fault_devices(
    fault: Any, ids: Mapping[str, Sequence[str]]
) -> tuple[list[tuple[str, int, str]], list[tuple[tuple[Any, ...], str]]]:
    """The devices a ``faults:`` entry names by id, and what is wrong with the names.

    The loader and the fault planner both check entries with this function; the planner draws
    the ``{fraction: x}`` form itself.

    Args:
        fault: One entry of :attr:`~qubit_sim.scenario.schema.Scenario.faults`.
        ids: Device ids per kind ``charger``, ``battery``, ``pv`` (see :func:`device_ids`).

    Returns:
        ``(device kind, index in its kind, id)`` of each named device, sorted; and each problem
        as ``(path inside the entry, message)``, e.g. ``(("devices", 1), "unknown ...")``.
    """
    allowed = FAULT_DEVICE_KINDS[fault.kind]
    single = hasattr(fault, "device")
    devices = [fault.device] if single else fault.devices
    if isinstance(devices, schema.DeviceFraction):
        if not ids["charger"]:
            return [], [(("devices",), "the site has no chargers to choose from")]
        return [], []
    problems: list[tuple[tuple[Any, ...], str]] = []
    chosen: set[tuple[str, int, str]] = set()
    for n, device_id in enumerate(devices):
        where: tuple[Any, ...] = ("device",) if single else ("devices", n)
        kind = next((k for k in ("charger", "battery", "pv") if device_id in ids[k]), None)
        if kind is None:
            known = [d for k in allowed for d in ids[k]]
            what = "device" if len(allowed) > 1 else _DEVICE_NAMES[allowed[0]]
            problems.append((where, _unknown(device_id, known, what)))
        elif kind not in allowed:
            problems.append(
                (
                    where,
                    f"{fault.kind} on {device_id!r} (a {_DEVICE_NAMES[kind]}) is not possible; "
                    + _WHY_NOT.get(fault.kind, ""),
                )
            )
        else:
            chosen.add((kind, list(ids[kind]).index(device_id), device_id))
    if not devices:
        problems.append((("devices",), "give at least one device id"))
    return sorted(chosen), problems

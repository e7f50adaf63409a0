"""The site's device ids: how each asset entry's devices are named, which entries would give two
devices one id, and which devices a ``faults:`` entry names.

The site builder names its devices with :func:`entry_device_ids`, the loader refuses the clashes
:func:`device_id_clashes` finds (each with its YAML line), and it checks every ``faults:`` entry
with :func:`fault_devices`, from which the fault planner (:mod:`qubit_sim.scenario.faults`) plans
too; so a scenario that validates also builds and plans.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from qubit_sim.core.naming import device_names
from qubit_sim.scenario import schema

__all__ = [
    "ASSET_SECTIONS",
    "FAULT_DEVICE_KINDS",
    "DeviceIdClash",
    "device_id_clashes",
    "device_ids",
    "entry_device_ids",
    "fault_devices",
]

#: The ``assets`` sections in the order their devices are built and numbered, with the device
#: kind of each.
ASSET_SECTIONS: dict[str, str] = {
    "chargers": "charger",
    "batteries": "battery",
    "pv": "pv",
    "loads": "load",
}

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

#: An asset entry: ``(section, index in the section)``, e.g. ``("chargers", 0)``.
Entry = tuple[str, int]


def _entries(assets: schema.AssetsSpec) -> list[tuple[Entry, Any]]:
    return [
        ((section, index), spec)
        for section in ASSET_SECTIONS
        for index, spec in enumerate(getattr(assets, section))
    ]


def _entry_size(section: str, spec: Any) -> int:
    """How many devices the entry ``spec`` of ``section`` makes (a charger: one per charging
    point, ``count * connectors``)."""
    if section == "chargers":
        return int(spec.count * spec.connectors)
    return int(getattr(spec, "count", 1))


def _prefix(section: str, spec: Any) -> str:
    if section == "chargers":
        return "dc" if spec.kind == "dc" else "ac"
    return ASSET_SECTIONS[section]


def entry_device_ids(assets: schema.AssetsSpec) -> dict[Entry, list[str]]:
    """The ids of each entry's devices, keyed ``(section, index)``, in build order (chargers,
    batteries, PV plants, loads), by :func:`qubit_sim.core.naming.device_names`.

    An entry with an ``id`` and one device keeps the ``id``; with several (chargers: ``count *
    connectors`` charging points) they are ``id1``, ``id2``, ... Entries without ``id`` are
    numbered by kind (``ac``, ``dc``, ``battery``, ``pv``, ``load``), skipping every id already
    taken: the ``id`` values of the file, the ids numbered from them, and those of earlier
    entries. Ids that two entries both give are not resolved here: see
    :func:`device_id_clashes`.
    """
    entries = _entries(assets)
    names = device_names(
        [
            (_prefix(section, spec), spec.id, _entry_size(section, spec))
            for (section, _), spec in entries
        ]
    )
    return {entry: ids for (entry, _), ids in zip(entries, names, strict=True)}


def device_ids(assets: schema.AssetsSpec) -> dict[str, list[str]]:
    """The device ids of ``assets`` per kind (``charger``, ``battery``, ``pv``, ``load``), as
    the site builder names them and the results columns show them (see
    :func:`entry_device_ids`)."""
    ids: dict[str, list[str]] = {kind: [] for kind in ASSET_SECTIONS.values()}
    for (section, _), devices in entry_device_ids(assets).items():
        ids[ASSET_SECTIONS[section]] += devices
    return ids


@dataclass(frozen=True)
class DeviceIdClash:
    """An asset entry that names a device (or gives an ``id``) that earlier entries already do.

    Attributes:
        entry: The later entry, ``(section, index)``.
        earlier: The earlier entries it clashes with, in build order.
        device_ids: The device ids they share; empty when only the ``id`` value repeats (an
            ``id: ac`` of one device beside an ``id: ac`` group numbered ``ac1``, ``ac2``).
        given_id: The entry's ``id``.
    """

    entry: Entry
    earlier: tuple[Entry, ...]
    device_ids: tuple[str, ...]
    given_id: str | None


def device_id_clashes(assets: schema.AssetsSpec) -> list[DeviceIdClash]:
    """Entries whose devices would share an id with those of earlier entries, or that repeat
    an earlier entry's ``id``.

    Every device id is unique across chargers, batteries, PV plants and loads: the results
    columns, the events, ``faults``, the OCPP charge point identities and the Qubit assets all
    name a device by it. Automatic ids never clash (:func:`entry_device_ids` skips taken ids),
    so each clash is between entries that give an ``id``. An entry that clashes with several
    earlier ones on different ids gives one clash per group of entries.
    """
    specs = dict(_entries(assets))
    owners: dict[str, list[Entry]] = {}
    givers: dict[str, list[Entry]] = {}
    clashes: list[DeviceIdClash] = []
    for entry, devices in entry_device_ids(assets).items():
        shared: dict[tuple[Entry, ...], list[str]] = {}
        for device in devices:
            if device in owners:
                shared.setdefault(tuple(owners[device]), []).append(device)
        given = specs[entry].id
        for earlier, ids in shared.items():
            clashes.append(DeviceIdClash(entry, earlier, tuple(ids), given))
        if given:
            told = {other for earlier in shared for other in earlier}
            repeated = tuple(other for other in givers.get(given, []) if other not in told)
            if repeated:
                clashes.append(DeviceIdClash(entry, repeated, (), given))
            givers.setdefault(given, []).append(entry)
        for device in devices:
            owners.setdefault(device, []).append(entry)
    return clashes


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

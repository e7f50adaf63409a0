"""The site's device views, built from a scenario: the data the device twins need beyond the
physics arrays (charger phases, voltages and OCPP version, PV ratings)."""

from __future__ import annotations

from collections.abc import Callable

from qubit_sim.control.base import Setpoints
from qubit_sim.errors import ConfigIssue, ScenarioError
from qubit_sim.scenario.build import SiteModel
from qubit_sim.twins.fleet_devices import SiteDevices

__all__ = ["held_setpoints", "site_devices"]

_VERSIONS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}


def site_devices(site: SiteModel, now_s: Callable[[], int]) -> SiteDevices:
    """Device views over ``site``'s assets.

    Args:
        site: The built site.
        now_s: Current simulated time [s].
    """
    assets = site.scenario.spec.assets
    phases: list[int] = []
    volts: list[float] = []
    versions: list[str] = []
    for entry in assets.chargers:
        n = entry.count * entry.connectors
        phases += [entry.phases] * n
        volts += [entry.voltage_v] * n
        versions += [_VERSIONS[entry.protocol]] * n
    kwp: list[float] = []
    inverter: list[float] = []
    for pv in assets.pv:
        kwp += [pv.kwp] * pv.count
        inverter += [pv.inverter_kw if pv.inverter_kw is not None else pv.kwp] * pv.count
    if len(phases) != site.fleet.n or len(kwp) != len(site.pv_ids):
        message = (
            f"{site.fleet.n} chargers and {len(site.pv_ids)} PV plants were built, but the "
            f"scenario lists {len(phases)} and {len(kwp)}; build the site from this scenario"
        )
        raise ScenarioError([ConfigIssue("assets", message)], site.scenario.name)
    return SiteDevices(
        site.fleet,
        site.batteries,
        site.pv_available_kw,
        site.clock.step_s,
        now_s,
        charger_phases=phases,
        charger_voltage_v=volts,
        charger_versions=versions,
        pv_kwp=kwp,
        pv_inverter_kw=inverter,
    )


def held_setpoints(devices: SiteDevices) -> Setpoints:
    """The limits the devices hold, as setpoints the physics applies (arrays shared)."""
    return Setpoints(devices.charger_limit_kw, devices.battery_setpoint_kw, devices.pv_limit_kw)

"""Build a runnable site from a validated scenario: devices, profiles, sessions, feeder, controller.

Bus references and other facts that need outside data (the feeder, profile names) are checked here,
collected, and raised as one :class:`~qubit_sim.errors.ScenarioError`, like the schema's errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qubit_sim.assets import BatteryBank, ChargerFleet
from qubit_sim.control.base import Controller, SiteInfo
from qubit_sim.control.registry import make_controller
from qubit_sim.core.clock import SimClock
from qubit_sim.core.rng import RngTree
from qubit_sim.errors import ConfigIssue, ControllerError, QubitSimError, ScenarioError
from qubit_sim.scenario.fault_targets import entry_device_ids
from qubit_sim.scenario.loader import LoadedScenario, device_id_issues, format_path

__all__ = ["GridModel", "SiteModel", "build_site"]

# A load CSV peaking above this many times the grid connection's import limit is taken for a
# file in W under a p_kw header: a building's own load is of the order of its connection (a
# connection sized for it), never twenty times it; W read as kW is 1,000 times too large.
_LOAD_UNIT_FACTOR = 20.0


@dataclass
class GridModel:
    """The feeder: the pandapower net, its fast power flow and the background profiles."""

    net: Any
    powerflow: Any
    site_buses: np.ndarray  # pandapower bus index of each site connection point
    background: Any  # BackgroundProfiles or None
    bus_names: list[str]
    bus_index: np.ndarray  # pandapower bus indices in result order
    site_bus_position: int  # position of the main site bus in site_buses
    site_bus_index_in_results: int  # position of the main site bus in vm_pu results
    voltage_limits_pu: tuple[float, float]
    loading_limit_pct: float
    record_bus_voltages: bool
    has_trafo: bool


@dataclass
class SiteModel:
    """Everything a run needs, built from a scenario."""

    scenario: LoadedScenario
    clock: SimClock
    rng: RngTree
    fleet: ChargerFleet
    batteries: BatteryBank
    pv_ids: list[str]
    pv_available_kw: np.ndarray  # steps x plants
    load_ids: list[str]
    load_kw: np.ndarray  # steps x loads
    sessions: Any  # SessionTable
    price_per_kwh: np.ndarray
    export_price_per_kwh: np.ndarray
    carbon_g_per_kwh: np.ndarray
    tariff: Any  # qubit_sim.core.tariff.Tariff
    controller: Controller
    site_info: SiteInfo
    grid: GridModel | None
    charger_site_bus: np.ndarray  # position in grid.site_buses, per charger
    battery_site_bus: np.ndarray
    pv_site_bus: np.ndarray
    load_site_bus: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return self.clock.n_steps


class _Issues:
    def __init__(self) -> None:
        self.items: list[ConfigIssue] = []

    def add(self, loc: tuple[Any, ...], message: str) -> None:
        issue = ConfigIssue(format_path(loc), message)
        if issue not in self.items:  # a group of devices repeats its entry's problem
            self.items.append(issue)


def build_site(
    loaded: LoadedScenario,
    *,
    seed: int | None = None,
    until_s: int | None = None,
    controller: Controller | None = None,
) -> SiteModel:
    """Build the site of ``loaded``.

    Args:
        seed: Overrides ``site.seed``.
        until_s: Simulate only the first ``until_s`` seconds (rounded down to whole steps).
        controller: Use this controller instead of the scenario's.

    Raises:
        ScenarioError: every problem found, each at its YAML path and line: feeder buses,
            profiles, data files (read over the whole horizon built), and the scenario's own
            controller refusing its ``controller.params`` or failing to import.
    """
    spec = loaded.spec
    clashes = device_id_issues(spec.assets, loaded.lines)
    if clashes:
        # Two devices with one id would share results columns, events and protocol identities.
        raise ScenarioError(clashes, str(loaded.path or loaded.name))
    site = spec.site
    duration = site.duration
    if until_s is not None:
        if until_s <= 0:
            raise ScenarioError([ConfigIssue("--until", f"must be positive, found {until_s} s")])
        duration = min(duration, (until_s // site.step) * site.step) or site.step
    clock = SimClock(site.start, site.step, duration)
    rng = RngTree(site.seed if seed is None else seed)
    times = clock.index()
    issues = _Issues()

    grid = _build_grid(loaded, times, issues)
    site_buses: list[int] = list(grid.site_buses) if grid else [0]

    def bus_position(loc: tuple[Any, ...], bus: Any) -> int:
        if grid is None or bus is None:
            return 0
        from qubit_sim.grid import resolve_bus

        try:
            index = resolve_bus(grid.net, bus)
        except QubitSimError as exc:
            issues.add(loc, str(exc))
            return 0
        if index not in site_buses:
            site_buses.append(index)
        return site_buses.index(index)

    device_ids = entry_device_ids(spec.assets)

    # Chargers
    charger_ids: list[str] = []
    rated: list[float] = []
    eff: list[float] = []
    is_dc: list[bool] = []
    charger_bus: list[int] = []
    for index, entry in enumerate(spec.assets.chargers):
        ids = device_ids["chargers", index]
        buses: list[Any] = list(entry.buses) if entry.buses else [entry.bus]
        for j, cid in enumerate(ids):
            charger_ids.append(cid)
            rated.append(entry.power_kw)
            eff.append(entry.efficiency)
            is_dc.append(entry.kind == "dc")
            bus = buses[(j // entry.connectors) % len(buses)]
            charger_bus.append(bus_position(("assets", "chargers", index, "bus"), bus))
    fleet = ChargerFleet(charger_ids, np.array(rated), np.array(eff), np.array(is_dc))

    # Batteries
    battery_ids: list[str] = []
    battery_bus: list[int] = []
    columns: dict[str, list[float]] = {
        k: []
        for k in (
            "capacity_kwh",
            "p_charge_max_kw",
            "p_discharge_max_kw",
            "eta_charge",
            "eta_discharge",
            "soc_min",
            "soc_max",
            "soc_initial",
            "self_discharge_per_h",
        )
    }
    for index, battery in enumerate(spec.assets.batteries):
        battery_ids += device_ids["batteries", index]
        battery_bus.append(bus_position(("assets", "batteries", index, "bus"), battery.bus))
        for key in columns:
            columns[key].append(float(getattr(battery, key)))
    batteries = BatteryBank(battery_ids, **{k: np.array(v) for k, v in columns.items()})

    def profiled_group(
        section: str, field: str, power_of: Callable[[Any], np.ndarray]
    ) -> tuple[list[str], np.ndarray, list[int]]:
        """Devices of a section whose power is a precomputed series (PV plants, loads)."""
        ids_out: list[str] = []
        series: list[np.ndarray] = []
        positions: list[int] = []
        for index, entry in enumerate(getattr(spec.assets, section)):
            ids = device_ids[section, index]
            try:
                power = power_of(entry)
            except QubitSimError as exc:
                issues.add(("assets", section, index, field), str(exc))
                power = np.zeros(len(times))
            buses = list(entry.buses) if entry.buses else [entry.bus]
            for j, device_id in enumerate(ids):
                ids_out.append(device_id)
                series.append(power)
                loc = ("assets", section, index, "bus")
                positions.append(bus_position(loc, buses[j % len(buses)]))
        stacked = np.column_stack(series) if series else np.zeros((len(times), 0))
        return ids_out, stacked, positions

    pv_ids, pv_available, pv_bus = profiled_group(
        "pv", "weather", lambda plant: _pv_power(loaded, plant, times)
    )
    load_ids, load_kw, load_bus = profiled_group(
        "loads", "profile", lambda load: _load_power(loaded, load, times)
    )

    # Tariff and carbon
    tariff, prices, export_prices, carbon = _tariff(loaded, times, issues)

    # EV sessions
    sessions = _sessions(loaded, clock, rng, charger_ids, issues)

    chosen = controller
    if chosen is None:
        try:
            chosen = make_controller(spec.controller.name, dict(spec.controller.params))
        except ControllerError as exc:
            path, message = _controller_issue(spec.controller.params, exc)
            issues.add(path, message)

    if issues.items:
        raise loaded.locate(ScenarioError(issues.items, str(loaded.path or loaded.name)))

    if grid is not None:
        from qubit_sim.grid import FastPowerFlow

        grid.site_buses = np.array(site_buses, dtype=np.int64)
        grid.powerflow = FastPowerFlow(grid.net, list(site_buses))

    limits = site.grid_connection
    period = spec.controller.period or site.step
    info = SiteInfo(
        step_s=site.step,
        period_s=period,
        charger_ids=tuple(charger_ids),
        battery_ids=tuple(battery_ids),
        pv_ids=tuple(pv_ids),
        load_ids=tuple(load_ids),
        charger_max_kw=fleet.rated_kw.copy(),
        charger_efficiency=fleet.efficiency.copy(),
        battery_capacity_kwh=batteries.capacity_kwh.copy(),
        battery_charge_max_kw=batteries.p_charge_max_kw.copy(),
        battery_discharge_max_kw=batteries.p_discharge_max_kw.copy(),
        import_limit_kw=float(limits.import_kw) if limits.import_kw is not None else np.inf,
        export_limit_kw=float(limits.export_kw) if limits.export_kw is not None else np.inf,
        tz=site.location.tz,
        params={"tariff": tariff, "scenario": loaded, "grid": grid},
    )
    assert chosen is not None
    return SiteModel(
        scenario=loaded,
        clock=clock,
        rng=rng,
        fleet=fleet,
        batteries=batteries,
        pv_ids=pv_ids,
        pv_available_kw=pv_available,
        load_ids=load_ids,
        load_kw=load_kw,
        sessions=sessions,
        price_per_kwh=prices,
        export_price_per_kwh=export_prices,
        carbon_g_per_kwh=carbon,
        tariff=tariff,
        controller=chosen,
        site_info=info,
        grid=grid,
        charger_site_bus=np.array(charger_bus, dtype=np.int64),
        battery_site_bus=np.array(battery_bus, dtype=np.int64),
        pv_site_bus=np.array(pv_bus, dtype=np.int64),
        load_site_bus=np.array(load_bus, dtype=np.int64),
    )


def _controller_issue(params: Any, exc: ControllerError) -> tuple[tuple[Any, ...], str]:
    """Where in the file a controller's refusal belongs: the parameter it names, else the name."""
    message = str(exc)
    for key in params:
        if re.search(rf"(?<![\w.]){re.escape(str(key))}(?![\w])", message):
            return ("controller", "params", key), message
    if params and "param" in message:
        return ("controller", "params"), message
    return ("controller", "name"), message


def _build_grid(loaded: LoadedScenario, times: Any, issues: _Issues) -> GridModel | None:
    spec = loaded.spec.grid
    if spec is None:
        return None
    from qubit_sim.grid import background_profiles, load_network, resolve_bus

    try:
        net = load_network(spec.network)
    except QubitSimError as exc:
        issues.add(("grid", "network"), str(exc))
        return None
    try:
        site_bus = resolve_bus(net, spec.site_bus)
    except QubitSimError as exc:
        issues.add(("grid", "site_bus"), str(exc))
        return None
    slack = {int(bus) for bus in net.ext_grid.bus}
    if site_bus in slack:
        # The external grid holds this bus's voltage: the site could never move it.
        issues.add(
            ("grid", "site_bus"),
            f"bus {spec.site_bus!r} is the feeder's slack bus (the external grid holds its "
            "voltage), so the site would have no effect on the feeder; connect it to a bus of "
            "the feeder itself",
        )
        return None
    if not spec.background and "background_scale" in spec.model_fields_set:
        issues.add(
            ("grid", "background_scale"),
            "has no effect with background: false (the feeder's loads and generators then keep "
            "their static values); remove it or set background: true",
        )
    background = None
    if spec.background:
        background = background_profiles(net, times, scale=spec.background_scale)
    return GridModel(
        net=net,
        powerflow=None,
        site_buses=np.array([site_bus], dtype=np.int64),
        background=background,
        bus_names=[str(name) for name in net.bus.name],
        bus_index=np.asarray(net.bus.index, dtype=np.int64),
        site_bus_position=0,
        site_bus_index_in_results=list(net.bus.index).index(site_bus),
        voltage_limits_pu=spec.voltage_limits_pu,
        loading_limit_pct=spec.loading_limit_pct,
        record_bus_voltages=spec.record_bus_voltages,
        has_trafo=len(net.trafo) > 0,
    )


def _pv_power(loaded: LoadedScenario, entry: Any, times: Any) -> np.ndarray:
    from qubit_sim.physics.pv import pv_ac_power_kw, tmy_weather, weather_from_csv
    from qubit_sim.physics.weather import relocate_weather

    location = loaded.spec.site.location
    if entry.weather.startswith("tmy:"):
        # A typical-year frame serves every calendar year of the horizon.
        weather = relocate_weather(
            tmy_weather(entry.weather[4:], times[0].year), location.lat, location.lon
        )
    else:
        weather = weather_from_csv(
            loaded.resolve(entry.weather),
            latitude=location.lat,
            longitude=location.lon,
            label=entry.weather_label or "center",
            tz=location.tz,
        )
    return pv_ac_power_kw(
        times,
        weather,
        latitude=location.lat,
        longitude=location.lon,
        kwp=entry.kwp,
        tilt_deg=entry.tilt_deg,
        azimuth_deg=entry.azimuth_deg,
        inverter_kw=entry.inverter_kw,
        losses_pct=entry.losses_pct,
        model=entry.model,
        interval_s=loaded.spec.site.step,
    )


def _load_power(loaded: LoadedScenario, entry: Any, times: Any) -> np.ndarray:
    from qubit_sim.physics.load import (
        load_from_csv,
        profile_at,
        scale_profile,
        simbench_load_profile,
    )

    site = loaded.spec.site
    if entry.profile.startswith("csv:"):
        limit = site.grid_connection.import_kw
        return load_from_csv(
            loaded.resolve(entry.profile[4:]),
            times,
            tz=site.location.tz,
            max_abs_kw=None if limit is None else _LOAD_UNIT_FACTOR * limit,
        )
    profile = scale_profile(
        simbench_load_profile(entry.profile), annual_kwh=entry.annual_kwh, peak_kw=entry.peak_kw
    )
    return profile_at(times, profile, tz=site.location.tz, align_weekdays=True)


def _tariff(
    loaded: LoadedScenario, times: Any, issues: _Issues
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    from qubit_sim.core import tariff as tariffs

    spec = loaded.spec.tariff
    tz = loaded.spec.site.location.tz
    rates = []
    for index, rate in enumerate(spec.energy_rates):
        try:
            rates.append(
                tariffs.EnergyRate(
                    name=rate.name,
                    price_per_kwh=rate.rate,
                    start=rate.start_time,
                    end=rate.end_time,
                    weekdays=tuple(rate.weekdays) if rate.weekdays is not None else None,  # type: ignore[arg-type]
                    months=tuple(rate.months) if rate.months is not None else None,
                )
            )
        except ValueError as exc:
            issues.add(("tariff", "energy_rates", index), str(exc))
    n = len(times)
    prices = np.zeros(n)
    export_prices = np.full(n, spec.export_price_per_kwh)
    tariff = tariffs.Tariff(currency=spec.currency, default_price_per_kwh=0.0)
    where = ("tariff", "price_csv" if spec.price_csv is not None else "energy_rates")
    try:
        series = None
        if spec.price_csv is not None:
            from qubit_sim.core.price_series import read_price_csv

            series = read_price_csv(loaded.resolve(spec.price_csv), tz, spec.currency)
            series.check_steps(times, loaded.spec.site.step)
        tariff = tariffs.Tariff(
            currency=spec.currency,
            energy_rates=tuple(rates),
            default_price_per_kwh=None if series is not None else spec.default_rate,
            export_price_per_kwh=spec.export_price_per_kwh,
            demand_charge_per_kw=spec.demand_charge_per_kw,
            billing_period=spec.billing_period,
            price_series=series,
        )
        prices = tariffs.energy_price_series(tariff, times, tz)
        export_prices = tariff.export_prices(times)
    except (QubitSimError, ValueError) as exc:
        issues.add(where, str(exc))
    carbon_spec = spec.carbon
    carbon = np.zeros(n)
    try:
        if carbon_spec.constant_g_per_kwh is not None:
            intensity = tariffs.CarbonIntensity(constant_g_per_kwh=carbon_spec.constant_g_per_kwh)
        elif carbon_spec.hourly_g_per_kwh is not None:
            intensity = tariffs.CarbonIntensity(
                hourly_g_per_kwh=tuple(carbon_spec.hourly_g_per_kwh)
            )
        else:
            assert carbon_spec.csv is not None
            intensity = tariffs.CarbonIntensity(csv_path=str(loaded.resolve(carbon_spec.csv)))
        carbon = tariffs.carbon_series(intensity, times, tz)
    except (QubitSimError, ValueError) as exc:
        issues.add(("tariff", "carbon"), str(exc))
    return tariff, prices, export_prices, carbon


def _sessions(
    loaded: LoadedScenario, clock: SimClock, rng: RngTree, charger_ids: list[str], issues: _Issues
) -> Any:
    from qubit_sim.agents.csv_replay import SESSION_DEFAULTS, read_sessions_csv
    from qubit_sim.agents.population import EvPopulation, SessionTable, VehicleType

    evs = loaded.spec.evs
    n_chargers = len(charger_ids)
    if evs is None:
        return SessionTable.empty()
    if evs.sessions_csv is not None:
        try:
            columns = read_sessions_csv(
                loaded.resolve(evs.sessions_csv),
                clock.start,
                tz=loaded.spec.site.location.tz,
                defaults=SESSION_DEFAULTS,
                charger_ids=charger_ids,
            )
            return SessionTable.from_columns(**columns)
        except QubitSimError as exc:
            issues.add(("evs", "sessions_csv"), str(exc))
            return SessionTable.empty()
    population = evs.population
    assert population is not None
    types = None
    if population.vehicle_types:
        types = [
            VehicleType(
                name=v.name,
                battery_kwh=v.battery_kwh,
                max_ac_kw=v.max_ac_kw,
                max_dc_kw=v.max_dc_kw,
                knee_soc=v.knee_soc,
                share=v.share,
            )
            for v in population.vehicle_types
        ]
    dedicated = population.dedicated_chargers
    if dedicated is None:
        dedicated = population.behaviour in ("depot", "residential")
    model = EvPopulation(
        n_vehicles=population.vehicles,
        behaviour=population.behaviour,
        vehicle_types=types,
        seed=rng.child_seed("ev_population"),
        tz=loaded.spec.site.location.tz,
        start_utc=clock.start,
        duration_s=clock.duration_s,
        n_chargers=n_chargers,
        dedicated=dedicated,
        target_soc=evs.target_soc,
    )
    return model.sessions()

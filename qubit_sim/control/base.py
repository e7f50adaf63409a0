"""The controller interface.

A controller sees an :class:`Observation` each control period and returns :class:`Setpoints`.
Arrays are indexed like the site's devices (``SiteInfo.charger_ids``, ``battery_ids``, ``pv_ids``).
Writing your own: ``docs/controllers.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Controller", "Observation", "Oracle", "Setpoints", "SiteInfo"]


@dataclass(frozen=True)
class SiteInfo:
    """Static facts about the site a controller runs on.

    Attributes:
        step_s: Physics step [s].
        period_s: Control period [s] (a multiple of the step).
        charger_ids / battery_ids / pv_ids / load_ids: Device ids, in array order.
        charger_max_kw: Rated power of each charger at its grid terminal [kW].
        charger_efficiency: Charger conversion efficiency [-].
        battery_capacity_kwh, battery_charge_max_kw, battery_discharge_max_kw [kWh, kW].
        import_limit_kw / export_limit_kw: Grid-connection limits [kW] (inf when unlimited).
        tz: IANA time zone of the site.
        params: Extra scenario data a controller may use (tariff, horizon, ...).
        oracle: The scenario's true exogenous series and sessions (:class:`Oracle`). Only for
            oracle forecasts and the perfect-foresight optimum: a realistic controller must not
            read it.
    """

    step_s: int
    period_s: int
    charger_ids: tuple[str, ...]
    battery_ids: tuple[str, ...]
    pv_ids: tuple[str, ...]
    load_ids: tuple[str, ...]
    charger_max_kw: np.ndarray
    charger_efficiency: np.ndarray
    battery_capacity_kwh: np.ndarray
    battery_charge_max_kw: np.ndarray
    battery_discharge_max_kw: np.ndarray
    import_limit_kw: float
    export_limit_kw: float
    tz: str
    params: dict[str, Any] = field(default_factory=dict)
    oracle: Oracle | None = None


@dataclass(frozen=True)
class Oracle:
    """What will happen, step by step, whatever the controller does.

    Attributes:
        times_utc: Step starts (pandas DatetimeIndex, UTC).
        load_kw: Building load per step, all loads [kW].
        pv_available_kw: Available PV per step and plant [kW].
        price_per_kwh / export_price_per_kwh / carbon_g_per_kwh: Per step.
        sessions: The run's SessionTable (see :mod:`qubit_sim.agents`).
        session_arrive_s / session_depart_s: Step-aligned plug-in and leave times [s].
        session_charger: The charger each session will use (-1: turned away).
    """

    times_utc: Any
    load_kw: np.ndarray
    pv_available_kw: np.ndarray
    price_per_kwh: np.ndarray
    export_price_per_kwh: np.ndarray
    carbon_g_per_kwh: np.ndarray
    sessions: Any
    session_arrive_s: np.ndarray
    session_depart_s: np.ndarray
    session_charger: np.ndarray


@dataclass
class Observation:
    """What a controller sees at the start of a control period (time ``t_s``).

    Power values follow the load convention [kW]. Every value is the true state at ``t_s`` (no
    measurement noise; under L4 coordination the battery fields come from validated L1
    telemetry), and the load, PV and prices are those of the step that starts at ``t_s``. The simulator reuses one Observation object and its per-device arrays, updating
    them in place between calls: copy an array (``obs.battery_soc.copy()``) to keep it. For a
    controller that is not one of the package's, every per-device array is a read-only view:
    writing into one stops the run with a :class:`~qubit_sim.errors.ControllerError`.

    Attributes:
        t_s: Simulation time [s]; ``k`` the step number.
        price_per_kwh / export_price_per_kwh [currency/kWh]; carbon_g_per_kwh [gCO2/kWh].
        load_kw: Total building load this step [kW].
        pv_available_kw: Available PV generation per plant (positive) [kW].
        charger_connected: EV plugged in, per charger.
        charger_ev_max_kw: Max grid-side power the plugged EV can take this step (taper, vehicle
            and charger limits, remaining need) [kW]; 0 when empty.
        charger_e_needed_kwh: Energy the EV still needs (EV side) [kWh].
        charger_departure_s: Announced departure [s] (-1 when empty).
        charger_session: Index of the plugged session in the run's session table (-1: empty).
        charger_soc: SOC of the plugged EV [-].
        charger_capacity_kwh: Battery capacity of the plugged EV [kWh].
        charger_vehicle_max_kw: The plugged EV's own power limit for this charger kind (EV side,
            before the taper) [kW].
        charger_knee_soc: SOC where the plugged EV's charging power starts to taper [-].
        battery_soc: SOC per battery [-].
        battery_p_min_kw / battery_p_max_kw: Feasible power range this step [kW].
        site_voltage_pu: Voltage at the site bus from the previous power flow [p.u.] (NaN if none).
    """

    t_s: int
    k: int
    price_per_kwh: float
    export_price_per_kwh: float
    carbon_g_per_kwh: float
    load_kw: float
    pv_available_kw: np.ndarray
    charger_connected: np.ndarray
    charger_ev_max_kw: np.ndarray
    charger_e_needed_kwh: np.ndarray
    charger_departure_s: np.ndarray
    battery_soc: np.ndarray
    battery_p_min_kw: np.ndarray
    battery_p_max_kw: np.ndarray
    site_voltage_pu: float = float("nan")
    charger_session: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    charger_soc: np.ndarray = field(default_factory=lambda: np.zeros(0))
    charger_capacity_kwh: np.ndarray = field(default_factory=lambda: np.zeros(0))
    charger_vehicle_max_kw: np.ndarray = field(default_factory=lambda: np.zeros(0))
    charger_knee_soc: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class Setpoints:
    """What a controller asks for until its next call.

    Each field holds one real number per device, in ``SiteInfo`` order: a numpy array of
    shape ``(n,)`` (floats or integers), or a Python list of numbers. Anything else (another
    shape, text, booleans, ``None``) stops the run with a
    :class:`~qubit_sim.errors.ControllerError`. The devices then do what real ones do with
    out-of-range requests, without an error:

    * ``charger_kw``: NaN or ``+inf`` = no limit; a negative limit becomes 0 kW (a charger does
      not feed back); the EV takes at most what it can (taper, vehicle and charger ratings,
      remaining need). Limits are rounded to 0.1 W, as OCPP carries them.
    * ``battery_kw``: clipped to the battery's ratings and to what its SOC window allows this
      step (``Observation.battery_p_min_kw`` .. ``battery_p_max_kw``), and rounded to the
      SunSpec register's resolution. NaN or ``±inf`` is refused (a battery has no "no limit").
    * ``pv_limit_kw``: NaN or ``+inf`` = no curtailment; a negative cap is 0 kW (all PV
      curtailed); caps are sent as a percentage of the inverter rating in 0.01 % steps.

    Attributes:
        charger_kw: Power limit at each charger's grid terminal [kW]; NaN = no limit.
        battery_kw: Battery power per battery, load convention (+ charge) [kW].
        pv_limit_kw: Max output per PV plant [kW]; NaN = no curtailment.
    """

    charger_kw: np.ndarray
    battery_kw: np.ndarray
    pv_limit_kw: np.ndarray

    @classmethod
    def unlimited(cls, n_chargers: int, n_batteries: int, n_pv: int) -> Setpoints:
        """No charger limit, batteries idle (0 kW), no PV curtailment."""
        return cls(
            charger_kw=np.full(n_chargers, np.nan),
            battery_kw=np.zeros(n_batteries),
            pv_limit_kw=np.full(n_pv, np.nan),
        )


class Controller:
    """Base class of every controller.

    Subclasses set :attr:`name`, accept their parameters as keyword arguments in ``__init__`` and
    implement :meth:`act`. :meth:`reset` is called once before the run with the site's facts;
    :meth:`act` once per control period (``SiteInfo.period_s``, the scenario's
    ``controller.period``). A run records the parameters of an instance in its manifest from
    a ``params`` mapping on the instance, or else from the attributes named like the
    ``__init__`` parameters (``self.gain = gain``).
    """

    name: str = "controller"
    #: Route setpoints through Qubit L4 coordination (commands, lifecycle, events) in fast runs.
    uses_coordination: bool = False
    #: Receive the simulator's own observation arrays instead of read-only views of them (the
    #: package's controllers do). Only for a controller that never writes into an observation:
    #: a write would then change the devices. It saves a few microseconds per control call.
    direct_observation: bool = False

    def reset(self, site: SiteInfo, rng: np.random.Generator) -> None:
        """Keep the site's facts (:attr:`site`) and the controller's random stream
        (:attr:`rng`, the run's ``"controller"`` stream). Overrides call ``super().reset``."""
        self.site = site
        self.rng = rng

    def act(self, obs: Observation) -> Setpoints:  # pragma: no cover - interface
        raise NotImplementedError

    def stats(self) -> dict[str, float]:
        """Figures to add to the KPIs (e.g. solve times). Empty by default."""
        return {}

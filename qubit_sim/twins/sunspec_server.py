"""Battery and PV twins as Modbus TCP servers exposing SunSpec models.

Battery map: 1 (common), 701 (AC measurement), 702 (capacity), 704 (AC controls), 713 (storage
capacity), 802 (battery). PV map: 1, 101 or 103 (inverter, by phase count), 120 (nameplate),
123 (immediate controls). Every read refreshes the measured points from the device; writes are
validated (see :mod:`qubit_sim.protocols.sunspec.controls`) and reach the device:

======================  =============================================================
battery, model 704      ``WSetEna`` ENABLED + ``WSet`` [W] (``WSetMod`` WATTS) or ``WSetPct``
                        [% of WMax] (``WSetMod`` W_MAX_PCT) -> ``set_power_setpoint_kw``;
                        DISABLED -> ``set_power_setpoint_kw(None)``. SunSpec sign: WSet > 0
                        discharges, so ``p_kw = -WSet / 1000``.
battery, model 802      ``SetOp`` CONNECT / DISCONNECT -> ``set_enabled``
pv, model 123           ``WMaxLim_Ena`` ENABLED + ``WMaxLimPct`` -> ``set_curtailment_pct``;
                        ``Conn`` CONNECT / DISCONNECT -> ``set_enabled``
======================  =============================================================

Revert timers run on *simulated* time from ``clock``: when ``WSetRvrtTms`` (704) elapses without a
new write to the WSet controls, the twin falls back to ``WSetRvrt``/``WSetPctRvrt`` if
``WSetEnaRvrt`` is ENABLED, else it disables WSet (device back to its local default). 123's
``WMaxLimPct_RvrtTms`` disables the limit; ``Conn_RvrtTms`` restores the connection state from
before the last ``Conn`` write. Timers are checked on every request and by :meth:`tick`.

A faulted device shows as 701 ``InvSt`` FAULT + ``Alrm`` MANUFACTURER_ALRM, 713 ``Sta`` ERROR and
802 ``State`` FAULT + ``Evt1`` OTHER_ALARM (battery), or 101/103 ``St`` FAULT + ``EvtVnd1`` bit 0
(PV; vendor-defined "device fault").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence

from qubit_sim import __version__
from qubit_sim.errors import ProtocolError, QubitSimError
from qubit_sim.protocols.sunspec import (
    BATTERY_MODELS,
    DEFAULT_BASE,
    PV_MODELS,
    ModelDef,
    SunSpecMap,
    choose_scale_factor,
    get_model,
)
from qubit_sim.protocols.sunspec.controls import RevertTimers, StagedWrite, stage_write
from qubit_sim.protocols.sunspec.transport import ModbusRegisterServer
from qubit_sim.twins.der_device import BatteryDevice, PvDevice

__all__ = ["SunSpecServer"]

_log = logging.getLogger(__name__)
_Raw = int | str | float | None
_DEVICE_FAILURE = 4
_NO_RESPONSE = 0x0B  # gateway target device failed to respond
_SQRT3 = math.sqrt(3.0)


class _Profile:
    """How one device kind maps onto its SunSpec models."""

    models: tuple[int, ...] = ()
    writable: Mapping[int, frozenset[str]] = {}

    def __init__(self, device: BatteryDevice | PvDevice, phases: int, frequency_hz: float) -> None:
        self.phases = phases
        self.frequency_hz = frequency_hz

    def publish_static(self, image: SunSpecMap) -> None:
        """Scale factors, ratings and initial control values."""

    def publish(self, image: SunSpecMap, now_s: float, timers: RevertTimers) -> None:
        """Measured values and states."""

    def inputs(self, now_s: float, timers: RevertTimers) -> tuple[object, ...]:
        """Everything :meth:`publish` reads; publishing again with equal inputs is skipped."""
        return (now_s,)

    def limits(self, image: SunSpecMap) -> dict[tuple[int, str], tuple[float, float]]:
        """Device-specific write ranges."""
        return {}

    def written(
        self,
        image: SunSpecMap,
        staged: StagedWrite,
        previous: dict[str, _Raw],
        now_s: float,
        timers: RevertTimers,
    ) -> None:
        """React to a committed write; ``previous`` holds the raw values it replaced."""

    def expired(self, image: SunSpecMap, name: str) -> None:
        """React to an elapsed revert timer."""


class _BatteryProfile(_Profile):
    models = BATTERY_MODELS
    writable = {
        704: frozenset(
            {
                "WSetEna",
                "WSetMod",
                "WSet",
                "WSetRvrt",
                "WSetPct",
                "WSetPctRvrt",
                "WSetEnaRvrt",
                "WSetRvrtTms",
            }
        ),
        802: frozenset({"SetOp"}),
    }
    _WSET_CONTROLS = frozenset({"WSetEna", "WSetMod", "WSet", "WSetPct", "WSetRvrtTms"})

    def __init__(self, device: BatteryDevice, phases: int, frequency_hz: float) -> None:
        super().__init__(device, phases, frequency_hz)
        self.device = device

    def publish_static(self, image: SunSpecMap) -> None:
        d = self.device
        w_max = 1000.0 * max(d.p_charge_max_kw, d.p_discharge_max_kw)
        w_sf = choose_scale_factor(w_max, "int16", decimals=0)
        v_sf = choose_scale_factor(d.voltage_v * _SQRT3 * 1.5, "uint16", decimals=1)
        a_sf = choose_scale_factor(1.5 * w_max / max(d.voltage_v, 1.0), "int16", decimals=2)
        m701 = image.block(701)
        for name, sf in (
            ("A_SF", a_sf),
            ("V_SF", v_sf),
            ("Hz_SF", -3),
            ("W_SF", w_sf),
            ("PF_SF", -2),
            ("VA_SF", w_sf),
            ("Var_SF", w_sf),
            ("TotWh_SF", 0),
            ("TotVarh_SF", 0),
            ("Tmp_SF", 0),
        ):
            m701.set_raw(name, sf)
        m701.set_symbol("ACType", "SINGLE_PHASE" if self.phases == 1 else "THREE_PHASE")
        m701.set_bits("DERMode", ["GRID_FOLLOWING"])
        m702 = image.block(702)
        for name, sf in (("W_SF", w_sf), ("VA_SF", w_sf), ("Var_SF", w_sf), ("V_SF", v_sf)):
            m702.set_raw(name, sf)
        m702.set_raw("A_SF", a_sf)
        m702.set_raw("PF_SF", -3)
        m702.set_raw("S_SF", 0)
        for rating, setting, value in (
            ("WMaxRtg", "WMax", w_max),
            ("VAMaxRtg", "VAMax", w_max),
            ("WChaRteMaxRtg", "WChaRteMax", 1000.0 * d.p_charge_max_kw),
            ("WDisChaRteMaxRtg", "WDisChaRteMax", 1000.0 * d.p_discharge_max_kw),
            ("VAChaRteMaxRtg", "VAChaRteMax", 1000.0 * d.p_charge_max_kw),
            ("VADisChaRteMaxRtg", "VADisChaRteMax", 1000.0 * d.p_discharge_max_kw),
            ("VNomRtg", "VNom", d.voltage_v),
            ("AMaxRtg", "AMax", w_max / max(d.voltage_v, 1.0)),
        ):
            m702.set(rating, value)
            m702.set(setting, value)
        m702.set_bits("CtrlModes", ["FIXED_W"])
        m704 = image.block(704)
        m704.set_raw("WSet_SF", choose_scale_factor(w_max, "int32", decimals=0))
        m704.set_raw("WSetPct_SF", -2)
        m704.set_symbol("WSetEna", "DISABLED")
        m704.set_symbol("WSetMod", "WATTS")
        m704.set_symbol("WSetEnaRvrt", "DISABLED")
        for name in ("WSet", "WSetRvrt", "WSetPct", "WSetPctRvrt", "WSetRvrtTms", "WSetRvrtRem"):
            m704.set_raw(name, 0)
        m713 = image.block(713)
        wh_sf = choose_scale_factor(1000.0 * d.capacity_kwh, "uint16", decimals=0)
        m713.set_raw("WH_SF", wh_sf)
        m713.set_raw("Pct_SF", -2)
        m713.set("WHRtg", 1000.0 * d.capacity_kwh)
        m802 = image.block(802)
        for name, sf in (
            ("AHRtg_SF", 0),
            ("WHRtg_SF", wh_sf),
            ("WChaDisChaMax_SF", w_sf),
            ("SoC_SF", -2),
            ("DoD_SF", -2),
            ("SoH_SF", 0),
            ("V_SF", v_sf),
            ("CellV_SF", -3),
            ("A_SF", a_sf),
            ("AMax_SF", a_sf),
            ("W_SF", w_sf),
        ):
            m802.set_raw(name, sf)
        m802.set("WHRtg", 1000.0 * d.capacity_kwh)
        m802.set("WChaRteMax", 1000.0 * d.p_charge_max_kw)
        m802.set("WDisChaRteMax", 1000.0 * d.p_discharge_max_kw)
        m802.set("SoCMax", 100.0 * d.soc_max)
        m802.set("SoCMin", 100.0 * d.soc_min)
        m802.set("SoH", 100.0)
        m802.set_symbol("LocRemCtl", "REMOTE")
        m802.set_symbol("Typ", "LITHIUM_ION")
        for name in ("Evt2", "EvtVnd1", "EvtVnd2"):
            m802.set_raw(name, 0)

    def inputs(self, now_s: float, timers: RevertTimers) -> tuple[object, ...]:
        d = self.device
        return (
            d.p_kw,
            d.soc,
            d.voltage_v,
            d.frequency_hz,
            d.e_charged_kwh,
            d.e_discharged_kwh,
            d.capacity_kwh,
            d.soc_min,
            d.soc_max,
            d.faulted,
            d.enabled,
            int(now_s),
            timers.remaining_s("WSet", now_s),
        )

    def publish(self, image: SunSpecMap, now_s: float, timers: RevertTimers) -> None:
        d = self.device
        p_w = -1000.0 * d.p_kw
        volts = d.voltage_v
        live = d.enabled and not d.faulted
        m701 = image.block(701)
        m701.set_symbol("St", "ON" if live else "OFF")
        if d.faulted:
            inverter_state = "FAULT"
        elif not d.enabled:
            inverter_state = "OFF"
        else:
            inverter_state = "RUNNING" if p_w != 0 else "STANDBY"
        m701.set_symbol("InvSt", inverter_state)
        m701.set_symbol("ConnSt", "CONNECTED" if live else "DISCONNECTED")
        m701.set_bits("Alrm", ["MANUFACTURER_ALRM"] if d.faulted else [])
        m701.set("MnAlrmInfo", "device fault" if d.faulted else "")
        m701.set("W", p_w)
        m701.set("VA", abs(p_w))
        m701.set("Var", 0.0)
        m701.set("PF", -1.0 if p_w < 0 else 1.0)
        m701.set("A", p_w / volts if volts > 0 else 0.0)
        m701.set("LNV", volts)
        m701.set("LLV", volts * _SQRT3 if self.phases == 3 else None)
        m701.set("Hz", d.frequency_hz)
        m701.set("TotWhInj", round(1000.0 * d.e_discharged_kwh))
        m701.set("TotWhAbs", round(1000.0 * d.e_charged_kwh))
        m701.set("TotVarhInj", 0)
        m701.set("TotVarhAbs", 0)
        for phase in (1, 2, 3):
            active = phase <= self.phases
            share = p_w / self.phases
            m701.set(f"WL{phase}", share if active else None)
            m701.set(f"VAL{phase}", abs(share) if active else None)
            m701.set(f"VarL{phase}", 0.0 if active else None)
            m701.set(f"PFL{phase}", (-1.0 if share < 0 else 1.0) if active else None)
            m701.set(f"AL{phase}", share / volts if active and volts > 0 else None)
            m701.set(f"VL{phase}", volts if active else None)
            m701.set(f"VL{phase}L{phase % 3 + 1}", volts * _SQRT3 if self.phases == 3 else None)
        image.block(704).set_raw("WSetRvrtRem", timers.remaining_s("WSet", now_s))
        m713 = image.block(713)
        m713.set("WHAvail", 1000.0 * d.capacity_kwh * d.soc)
        m713.set("SoC", 100.0 * d.soc)
        m713.set("SoH", 100.0)
        m713.set_symbol("Sta", "ERROR" if d.faulted else "OK")
        m802 = image.block(802)
        m802.set("SoC", 100.0 * d.soc)
        m802.set("DoD", 100.0 * (1.0 - d.soc))
        m802.set_raw("NCyc", int(d.e_discharged_kwh / d.capacity_kwh))
        if not live:
            charge_state = "OFF"
        elif p_w < 0:
            charge_state = "CHARGING"
        elif p_w > 0:
            charge_state = "DISCHARGING"
        elif d.soc >= d.soc_max:
            charge_state = "FULL"
        elif d.soc <= d.soc_min:
            charge_state = "EMPTY"
        else:
            charge_state = "HOLDING"
        m802.set_symbol("ChaSt", charge_state)
        m802.set_raw("Hb", int(now_s) % 0x10000)
        state = "FAULT" if d.faulted else ("CONNECTED" if d.enabled else "DISCONNECTED")
        m802.set_symbol("State", state)
        m802.set_bits("Evt1", ["OTHER_ALARM"] if d.faulted else [])
        m802.set("W", p_w)
        m802.set_symbol("SetOp", "CONNECT" if d.enabled else "DISCONNECT")
        m802.set_symbol("SetInvState", "INVERTER_STARTED" if d.enabled else "INVERTER_STOPPED")

    def limits(self, image: SunSpecMap) -> dict[tuple[int, str], tuple[float, float]]:
        m702 = image.block(702)
        w_max = float(m702.get("WMax") or 0.0)
        charge_w = float(m702.get("WChaRteMax") or 0.0)
        discharge_w = float(m702.get("WDisChaRteMax") or 0.0)
        watts = (-charge_w, discharge_w)
        pct = (-100.0 * charge_w / w_max, 100.0 * discharge_w / w_max) if w_max else (0.0, 0.0)
        return {
            (704, "WSet"): watts,
            (704, "WSetRvrt"): watts,
            (704, "WSetPct"): pct,
            (704, "WSetPctRvrt"): pct,
        }

    def written(
        self,
        image: SunSpecMap,
        staged: StagedWrite,
        previous: dict[str, _Raw],
        now_s: float,
        timers: RevertTimers,
    ) -> None:
        if staged.block.model.id == 802:
            self.device.set_enabled(staged.block.symbol("SetOp") == "CONNECT")
            return
        if staged.names & self._WSET_CONTROLS:
            m704 = image.block(704)
            if m704.symbol("WSetEna") == "ENABLED":
                timers.arm("WSet", now_s, float(m704.get_raw("WSetRvrtTms") or 0))
            else:
                timers.cancel("WSet")
            self._apply_wset(image)

    def expired(self, image: SunSpecMap, name: str) -> None:
        m704 = image.block(704)
        if m704.symbol("WSetEnaRvrt") == "ENABLED":
            m704.set_raw("WSet", m704.get_raw("WSetRvrt"))
            m704.set_raw("WSetPct", m704.get_raw("WSetPctRvrt"))
        else:
            m704.set_symbol("WSetEna", "DISABLED")
        self._apply_wset(image)

    def _apply_wset(self, image: SunSpecMap) -> None:
        m704 = image.block(704)
        if m704.symbol("WSetEna") != "ENABLED":
            self.device.set_power_setpoint_kw(None)
            return
        if m704.symbol("WSetMod") == "W_MAX_PCT":
            w_max = float(image.block(702).get("WMax") or 0.0)
            watts = float(m704.get("WSetPct") or 0.0) / 100.0 * w_max
        else:
            watts = float(m704.get("WSet") or 0.0)
        self.device.set_power_setpoint_kw(-watts / 1000.0)


class _PvProfile(_Profile):
    writable = {
        123: frozenset({"Conn", "Conn_RvrtTms", "WMaxLimPct", "WMaxLimPct_RvrtTms", "WMaxLim_Ena"})
    }
    _LIMIT_CONTROLS = frozenset({"WMaxLimPct", "WMaxLimPct_RvrtTms", "WMaxLim_Ena"})

    def __init__(self, device: PvDevice, phases: int, frequency_hz: float) -> None:
        super().__init__(device, phases, frequency_hz)
        self.device = device
        inverter = 101 if phases == 1 else 103
        self.inverter_model = inverter
        self.models = tuple(inverter if m == 103 else m for m in PV_MODELS)
        self._conn_before: _Raw = 1  # CONNECT

    def publish_static(self, image: SunSpecMap) -> None:
        d = self.device
        w_max = 1000.0 * d.inverter_kw
        w_sf = choose_scale_factor(w_max, "int16", decimals=0)
        v_sf = choose_scale_factor(d.voltage_v * _SQRT3 * 1.5, "uint16", decimals=1)
        a_sf = choose_scale_factor(1.5 * w_max / max(d.voltage_v, 1.0), "uint16", decimals=2)
        inv = image.block(self.inverter_model)
        for name, sf in (
            ("A_SF", a_sf),
            ("V_SF", v_sf),
            ("W_SF", w_sf),
            ("Hz_SF", -2),
            ("VA_SF", w_sf),
            ("VAr_SF", w_sf),
            ("PF_SF", 0),
            ("WH_SF", 0),
            ("Tmp_SF", 0),
        ):
            inv.set_raw(name, sf)
        m120 = image.block(120)
        m120.set_symbol("DERTyp", "PV")
        for name, sf in (
            ("WRtg_SF", w_sf),
            ("VARtg_SF", w_sf),
            ("VArRtg_SF", w_sf),
            ("ARtg_SF", a_sf),
            ("PFRtg_SF", -2),
        ):
            m120.set_raw(name, sf)
        m120.set("WRtg", w_max)
        m120.set("VARtg", w_max)
        for quadrant in (1, 2, 3, 4):
            m120.set(f"VArRtgQ{quadrant}", 0.0)
            m120.set(f"PFRtgQ{quadrant}", 1.0)
        m120.set("ARtg", w_max / max(d.voltage_v, 1.0))
        m123 = image.block(123)
        m123.set_raw("WMaxLimPct_SF", -2)
        m123.set_raw("OutPFSet_SF", -3)
        m123.set_raw("Conn_RvrtTms", 0)
        m123.set_raw("WMaxLimPct_RvrtTms", 0)
        m123.set("WMaxLimPct", 100.0)
        m123.set_symbol("WMaxLim_Ena", "DISABLED")
        m123.set_symbol("Conn", "CONNECT" if d.enabled else "DISCONNECT")

    def inputs(self, now_s: float, timers: RevertTimers) -> tuple[object, ...]:
        d = self.device
        return (
            d.p_kw,
            d.p_available_kw,
            d.inverter_kw,
            d.voltage_v,
            getattr(d, "frequency_hz", self.frequency_hz),
            d.e_produced_kwh,
            d.faulted,
            d.enabled,
        )

    def publish(self, image: SunSpecMap, now_s: float, timers: RevertTimers) -> None:
        d = self.device
        p_w = -1000.0 * d.p_kw
        volts = d.voltage_v
        three = self.phases == 3
        inv = image.block(self.inverter_model)
        current = p_w / volts if volts > 0 else 0.0
        inv.set("A", current)
        for phase, name in enumerate(("AphA", "AphB", "AphC"), start=1):
            inv.set(name, current / self.phases if phase <= self.phases else None)
        for name in ("PPVphAB", "PPVphBC", "PPVphCA"):
            inv.set(name, volts * _SQRT3 if three else None)
        inv.set("PhVphA", volts)
        inv.set("PhVphB", volts if three else None)
        inv.set("PhVphC", volts if three else None)
        inv.set("W", p_w)
        inv.set("Hz", float(getattr(d, "frequency_hz", self.frequency_hz)))
        inv.set("VA", p_w)
        inv.set("VAr", 0.0)
        inv.set("PF", 100.0)
        inv.set("WH", round(1000.0 * d.e_produced_kwh))
        m123 = image.block(123)
        limited = m123.symbol("WMaxLim_Ena") == "ENABLED" and d.p_available_kw * 100.0 > (
            d.inverter_kw * float(m123.get("WMaxLimPct") or 0.0)
        )
        if d.faulted:
            state = "FAULT"
        elif not d.enabled:
            state = "OFF"
        elif limited:
            state = "THROTTLED"
        elif d.p_available_kw <= 0:
            state = "SLEEPING"
        else:
            state = "MPPT"
        inv.set_symbol("St", state)
        inv.set_bits("Evt1", ["MANUAL_SHUTDOWN"] if not d.enabled and not d.faulted else [])
        inv.set_raw("Evt2", 0)
        inv.set_raw("EvtVnd1", 1 if d.faulted else 0)
        for name in ("EvtVnd2", "EvtVnd3", "EvtVnd4"):
            inv.set_raw(name, 0)

    def written(
        self,
        image: SunSpecMap,
        staged: StagedWrite,
        previous: dict[str, _Raw],
        now_s: float,
        timers: RevertTimers,
    ) -> None:
        m123 = image.block(123)
        if "Conn" in staged.names:
            self._conn_before = previous["Conn"]
            timers.arm("Conn", now_s, float(m123.get_raw("Conn_RvrtTms") or 0))
            self.device.set_enabled(m123.symbol("Conn") == "CONNECT")
        if staged.names & self._LIMIT_CONTROLS:
            if m123.symbol("WMaxLim_Ena") == "ENABLED":
                timers.arm("WMaxLimPct", now_s, float(m123.get_raw("WMaxLimPct_RvrtTms") or 0))
            else:
                timers.cancel("WMaxLimPct")
            self._apply_limit(image)

    def expired(self, image: SunSpecMap, name: str) -> None:
        m123 = image.block(123)
        if name == "Conn":
            m123.set_raw("Conn", self._conn_before)
            self.device.set_enabled(m123.symbol("Conn") == "CONNECT")
            return
        m123.set_symbol("WMaxLim_Ena", "DISABLED")
        self._apply_limit(image)

    def _apply_limit(self, image: SunSpecMap) -> None:
        m123 = image.block(123)
        if m123.symbol("WMaxLim_Ena") == "ENABLED":
            self.device.set_curtailment_pct(float(m123.get("WMaxLimPct") or 0.0))
        else:
            self.device.set_curtailment_pct(None)


class SunSpecServer:
    """A battery or PV twin served over Modbus TCP with SunSpec models.

    Args:
        device: The device behind the endpoint.
        kind: ``"battery"`` or ``"pv"``.
        host: Interface to bind.
        port: TCP port; 0 picks a free one (read :attr:`port` after :meth:`start`).
        unit_id: Modbus unit id (1..247); 0 and 255 (direct addressing on TCP) are answered
            too, other unit ids get exception 0x0B.
        clock: Simulated time [s]; revert timers run on it. Without one, time stands at 0.
        identity: ``(manufacturer, model, serial, version)`` for model 1.
        phases: 1 or 3; selects the PV inverter model (101 or 103) and the per-phase points.
        base: Address of the ``SunS`` marker (0, 40000 or 50000).
        extra_models: ``(model_id, length)`` of uninterpreted models placed after model 1,
            as vendor models of a real device would be.
        nominal_frequency_hz: Frequency published by PV devices that do not report one [Hz].
    """

    def __init__(
        self,
        device: BatteryDevice | PvDevice,
        kind: str = "battery",
        host: str = "127.0.0.1",
        port: int = 502,
        unit_id: int = 1,
        clock: Callable[[], float] | None = None,
        identity: tuple[str, str, str, str] | None = None,
        *,
        phases: int = 3,
        base: int = DEFAULT_BASE,
        extra_models: Sequence[tuple[int, int]] = (),
        nominal_frequency_hz: float = 50.0,
    ) -> None:
        if phases not in (1, 3):
            raise ProtocolError(f"phases = {phases}; a SunSpec twin here has 1 or 3 phases")
        self.device = device
        self.kind = kind
        self._profile: _Profile
        if kind == "battery" and isinstance(device, BatteryDevice):
            self._profile = _BatteryProfile(device, phases, nominal_frequency_hz)
        elif kind == "pv" and isinstance(device, PvDevice):
            self._profile = _PvProfile(device, phases, nominal_frequency_hz)
        elif kind in ("battery", "pv"):
            wanted = "BatteryDevice" if kind == "battery" else "PvDevice"
            raise ProtocolError(
                f"a {kind} twin needs a {wanted}; {type(device).__name__} does not provide "
                "all of its attributes"
            )
        else:
            raise ProtocolError(f"SunSpec twin kind {kind!r} is unknown; use 'battery' or 'pv'")
        self.clock: Callable[[], float] = clock if clock is not None else (lambda: 0.0)
        models: list[ModelDef] = [get_model(m) for m in self._profile.models]
        clashes = sorted({m for m, _ in extra_models} & set(self._profile.models))
        if clashes:
            raise ProtocolError(
                f"extra models {clashes} clash with the {kind} twin's own models; "
                "use vendor model IDs (64000 and up)"
            )
        extras = [ModelDef.opaque(model_id, length) for model_id, length in extra_models]
        self.map = SunSpecMap([models[0], *extras, *models[1:]], base=base)
        self.timers = RevertTimers()
        self._published: tuple[object, ...] | None = None
        self._publish_identity(kind, unit_id, identity)
        self._profile.publish_static(self.map)
        self._publish(self._now())
        writable = [False] * len(self.map.registers)
        for block in self.map.blocks:
            names = self._profile.writable.get(block.model.id, frozenset())
            for point in block.model.points:
                if point.name in names:
                    first = block.address + point.offset - base
                    writable[first : first + point.size] = [True] * point.size
        self._transport = ModbusRegisterServer(
            base=base,
            writable=writable,
            on_read=self._on_read,
            on_write=self._on_write,
            host=host,
            port=port,
            unit_id=unit_id,
        )
        self._ticker: asyncio.Task[None] | None = None
        #: While set (an injected Modbus timeout), every request fails with exception 0x0B
        #: "gateway target device failed to respond" instead of being served.
        self.silent = False

    @property
    def host(self) -> str:
        """The bound interface."""
        return self._transport.host

    @property
    def port(self) -> int:
        """The TCP port (the bound one after :meth:`start`)."""
        return self._transport.port

    @property
    def unit_id(self) -> int:
        """The Modbus unit id served."""
        return self._transport.unit_id

    async def start(self, tick_interval_s: float | None = None) -> None:
        """Listen; with ``tick_interval_s`` also call :meth:`tick` every so many wall seconds.

        The periodic tick is for real-time serving; in lock-step runs the engine calls
        :meth:`tick` itself after advancing the simulated clock.
        """
        await self._transport.start()
        if tick_interval_s is not None and self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick_loop(tick_interval_s))

    async def stop(self) -> None:
        """Stop serving."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        await self._transport.stop()

    def tick(self) -> list[str]:
        """Apply revert timers that elapsed on the simulated clock; returns their names."""
        now_s = self._now()
        expired = self.timers.pop_expired(now_s)
        for name in expired:
            _log.info("%s twin: %s revert timer elapsed at t=%.0f s", self.kind, name, now_s)
            self._profile.expired(self.map, name)
            self._published = None
        return expired

    async def _tick_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.tick()

    def _now(self) -> float:
        return float(self.clock())

    def _publish(self, now_s: float) -> None:
        # A poll reads several models in a row: encode them once per change, not per request.
        inputs = self._profile.inputs(now_s, self.timers)
        if inputs != self._published:
            self._profile.publish(self.map, now_s, self.timers)
            self._published = inputs

    def _publish_identity(
        self, kind: str, unit_id: int, identity: tuple[str, str, str, str] | None
    ) -> None:
        manufacturer, model, serial, version = identity or (
            "qubit-sim",
            f"{kind} twin",
            f"QS-{kind}-{unit_id:03d}",
            __version__,
        )
        common = self.map.block(1)
        common.set("Mn", manufacturer)
        common.set("Md", model)
        common.set("Opt", kind)
        common.set("Vr", version)
        common.set("SN", serial)
        common.set_raw("DA", unit_id)

    def _on_read(self, address: int, count: int) -> list[int] | int:
        if self.silent:
            return _NO_RESPONSE
        try:
            self.tick()
            self._publish(self._now())
            return self.map.read(address, count)
        except QubitSimError as exc:
            _log.error("%s twin: read %d+%d failed: %s", self.kind, address, count, exc)
            return _DEVICE_FAILURE

    def _on_write(self, address: int, values: list[int]) -> int | None:
        if self.silent:
            return _NO_RESPONSE
        try:
            self.tick()
            now_s = self._now()
            staged = stage_write(
                self.map, address, values, self._profile.writable, self._profile.limits(self.map)
            )
            if isinstance(staged, int):
                return staged
            block = staged.block
            previous: dict[str, _Raw] = {name: block.get_raw(name) for name in staged.names}
            start = address - self.map.base
            self.map.registers[start : start + len(values)] = values
            self._profile.written(self.map, staged, previous, now_s, self.timers)
            self._published = None  # states derived from controls may have changed
            return None
        except QubitSimError as exc:
            _log.error("%s twin: write at %d failed: %s", self.kind, address, exc)
            return _DEVICE_FAILURE

"""The rounding a setpoint goes through on the wire, for in-process links to apply too.

A limit sent over OCPP or written into a SunSpec register arrives rounded; a ``fast`` run must
see exactly the numbers a ``wire`` run sees, so the in-process links round the same way. Each
quantity has a scalar function (what one link applies) and a vectorised one over a whole fleet
(what the setpoint router compares, to send only what changed); both give bit-identical results.

* Charger limits: OCPP charging-profile limits in W, ``multipleOf 0.1``
  (:func:`~qubit_sim.protocols.ocpp_common.quantize_kw`).
* Battery setpoints: SunSpec 704 ``WSet`` [W], an ``int32`` with scale factor ``WSet_SF``, in the
  generator sign; the server refuses values outside ``-WChaRteMax .. WDisChaRteMax`` (model 702).
* PV limits: SunSpec 123 ``WMaxLimPct`` [% of the nameplate ``WRtg``], a ``uint16`` with scale
  factor -2; the device caps its output at that percentage of its inverter rating.

The scale factors are those :class:`~qubit_sim.twins.sunspec_server.SunSpecServer` publishes for
the same device ratings (a test checks them against a live server's register map).
"""

from __future__ import annotations

import math

import numpy as np

from qubit_sim.protocols.ocpp_common import quantize_kw
from qubit_sim.protocols.sunspec import choose_scale_factor, from_raw, to_raw

__all__ = [
    "PV_PCT_SF",
    "BatteryWire",
    "PvWire",
    "charger_limit_kw",
    "charger_limits_kw",
]

#: Scale factor of SunSpec 123 ``WMaxLimPct`` as the server publishes it (0.01 % steps).
PV_PCT_SF = -2


def charger_limit_kw(limit_kw: float | None) -> float | None:
    """One charger limit [kW] as it reaches the charge point; ``None`` means no limit.

    NaN and infinite values mean no limit; negative values become 0 (the charger cannot feed
    back), the rest is rounded to 0.1 W.
    """
    if limit_kw is None or not math.isfinite(limit_kw):
        return None
    return quantize_kw(max(float(limit_kw), 0.0))


def charger_limits_kw(limit_kw: np.ndarray) -> np.ndarray:
    """:func:`charger_limit_kw` over an array [kW]; NaN stands for no limit."""
    # Same operations in the same order as quantize_limit(p_kw * 1000.0) / 1000.0, in place.
    quantized = np.maximum(np.asarray(limit_kw, dtype=float), 0.0)
    quantized *= 1000.0
    quantized *= 10.0
    np.rint(quantized, out=quantized)
    quantized /= 10.0
    quantized /= 1000.0
    # A sum is finite only if every term is; the element-wise test runs only when one is not.
    if not math.isfinite(np.add.reduce(quantized, axis=None)):
        quantized[~np.isfinite(quantized)] = np.nan
    return quantized


def _scale(sf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multiplier and divisor reproducing :func:`to_raw`'s arithmetic for each scale factor."""
    sf = np.asarray(sf)
    up = np.where(sf < 0, 10.0 ** np.where(sf < 0, -sf, 0), 1.0)
    down = np.where(sf >= 0, 10.0 ** np.where(sf >= 0, sf, 0), 1.0)
    return up, down


class BatteryWire:
    """How battery setpoints travel as SunSpec 704 ``WSet``, for a bank of batteries.

    Args:
        p_charge_max_kw: Charging rating per battery [kW].
        p_discharge_max_kw: Discharging rating per battery [kW].
    """

    def __init__(self, p_charge_max_kw: np.ndarray, p_discharge_max_kw: np.ndarray) -> None:
        charge = np.asarray(p_charge_max_kw, dtype=float)
        discharge = np.asarray(p_discharge_max_kw, dtype=float)
        w_max = 1000.0 * np.maximum(charge, discharge)
        self.wset_sf = np.array(
            [choose_scale_factor(w, "int32", decimals=0) for w in w_max], dtype=np.int64
        )
        w_sf = [choose_scale_factor(w, "int16", decimals=0) for w in w_max]
        #: Ratings as the device advertises them in model 702 (WChaRteMax, WDisChaRteMax) [kW].
        self.charge_max_kw = np.array(
            [
                from_raw(to_raw(1000.0 * c, sf), sf) / 1000.0
                for c, sf in zip(charge, w_sf, strict=True)
            ]
        )
        self.discharge_max_kw = np.array(
            [
                from_raw(to_raw(1000.0 * d, sf), sf) / 1000.0
                for d, sf in zip(discharge, w_sf, strict=True)
            ]
        )
        #: Scale of the ``WSet`` round trip per battery: ``raw = rint(W * scale_up / scale_down)``,
        #: ``W = raw / scale_up * scale_down``.
        self.scale_up, self.scale_down = _scale(self.wset_sf)

    def clip_kw(self, p_kw: np.ndarray) -> np.ndarray:
        """Setpoints [kW, + charge] clipped to the advertised ratings (the server refuses more)."""
        return np.minimum(np.maximum(p_kw, -self.discharge_max_kw), self.charge_max_kw)

    def setpoints_kw(self, p_kw: np.ndarray) -> np.ndarray:
        """Clipped setpoints [kW] as the battery receives them (through ``WSet``)."""
        watts = -1000.0 * self.clip_kw(np.asarray(p_kw, dtype=float))
        raw = np.rint(watts * self.scale_up / self.scale_down)
        # from_raw: raw / 10**-sf for negative sf, raw * 10**sf otherwise.
        received_w = raw / self.scale_up * self.scale_down
        return -received_w / 1000.0

    def setpoint_kw(self, j: int, p_kw: float) -> float:
        """One battery's setpoint [kW] as it arrives (what a direct link applies)."""
        clipped = min(max(float(p_kw), -self.discharge_max_kw[j]), self.charge_max_kw[j])
        sf = int(self.wset_sf[j])
        watts = from_raw(to_raw(-1000.0 * clipped, sf), sf)
        return -watts / 1000.0


class PvWire:
    """How PV limits travel as SunSpec 123 ``WMaxLimPct``, for a set of plants.

    Args:
        inverter_kw: AC rating of each plant's inverter [kW].
    """

    def __init__(self, inverter_kw: np.ndarray) -> None:
        self.inverter_kw = np.asarray(inverter_kw, dtype=float)
        w_sf = [choose_scale_factor(1000.0 * kw, "int16", decimals=0) for kw in self.inverter_kw]
        #: Nameplate ``WRtg`` (model 120) as a client reads it back [kW].
        self.rating_kw = np.array(
            [
                from_raw(to_raw(1000.0 * kw, sf), sf) / 1000.0
                for kw, sf in zip(self.inverter_kw, w_sf, strict=True)
            ]
        )

    def pct(self, j: int, limit_kw: float) -> float:
        """``WMaxLimPct`` [%] the device receives for a cap of ``limit_kw`` [kW] (>= 0)."""
        wanted = min(100.0, 100.0 * abs(limit_kw) / self.rating_kw[j])
        return from_raw(to_raw(wanted, PV_PCT_SF), PV_PCT_SF)

    def limit_kw(self, j: int, limit_kw: float | None) -> float | None:
        """One plant's cap [kW] as the device applies it; ``None`` (or NaN/inf) lifts it."""
        if limit_kw is None or not math.isfinite(limit_kw):
            return None
        return float(self.inverter_kw[j] * self.pct(j, max(limit_kw, 0.0)) / 100.0)

    def limits_kw(self, limit_kw: np.ndarray) -> np.ndarray:
        """:meth:`limit_kw` over all plants [kW]; NaN stands for no cap."""
        wanted = np.maximum(np.asarray(limit_kw, dtype=float), 0.0)
        pct = np.minimum(100.0, 100.0 * np.abs(wanted) / self.rating_kw)
        received = np.rint(pct * 100.0) / 100.0
        caps = self.inverter_kw * received / 100.0
        caps[~np.isfinite(wanted)] = np.nan
        return caps

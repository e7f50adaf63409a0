"""Shadow mode: a physical device and its twin on the same commands, compared step by step.

Per step the twin's power and SOC (what the simulation computed) and the device's measured
power and SOC are recorded. The report gives the power difference (mean absolute, RMS, largest
[kW]), the SOC change of each over the run and the mean absolute SOC difference, and — for
batteries, whose power should follow the setpoint — the response delay: for every request of the
stack, the wall time from its first write until the device's power came within ``tolerance_kw``
of the value the envelope finally let through for it, and until the twin's power came within
``tolerance_kw`` of the request itself [s]. Device readings taken between steps count too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qubit_sim.hil.bridge import CommandRecord

__all__ = ["ShadowRecorder", "ShadowSample"]


@dataclass(frozen=True)
class ShadowSample:
    """One step of twin vs device.

    Attributes:
        wall_s: Monotonic wall time at the end of the step [s].
        t_s: Simulated time of the step start [s].
        twin_p_kw / device_p_kw: Power [kW], load convention.
        twin_soc / device_soc: SOC [fraction] (NaN when unknown).
    """

    wall_s: float
    t_s: int
    twin_p_kw: float
    device_p_kw: float
    twin_soc: float
    device_soc: float


def _first_within(
    points: list[tuple[float, float]], start: float, end: float, target: float, tol: float
) -> float | None:
    for wall_s, p_kw in points:
        if start <= wall_s < end and abs(p_kw - target) <= tol:
            return wall_s - start
    return None


def _requests(commands: list[CommandRecord]) -> list[tuple[float, float | None, float]]:
    """``(first write [s], requested [kW], final value sent [kW])`` per request of the stack."""
    out: list[tuple[float, float | None, float]] = []
    for command in commands:
        if command.action == "safe":
            break
        if out and out[-1][1] == command.requested_kw:
            out[-1] = (out[-1][0], command.requested_kw, command.sent_kw)
        else:
            out.append((command.wall_s, command.requested_kw, command.sent_kw))
    return out


@dataclass
class ShadowRecorder:
    """Collects :class:`ShadowSample` rows for one device and reports the differences.

    Attributes:
        device_id: The bench device.
        kind: ``"battery"``, ``"charger"`` or ``"pv"``.
        tolerance_kw: How close counts as "reached" for the response delay [kW].
    """

    device_id: str
    kind: str
    tolerance_kw: float = 0.2
    samples: list[ShadowSample] = field(default_factory=list)
    readings: list[tuple[float, float]] = field(default_factory=list)

    def add(self, sample: ShadowSample) -> None:
        """Record one step."""
        self.samples.append(sample)

    def add_reading(self, wall_s: float, p_kw: float) -> None:
        """Record a device reading taken between steps [s, kW] (for the response delay)."""
        self.readings.append((wall_s, p_kw))

    def report(self, commands: list[CommandRecord]) -> dict[str, Any]:
        """The model-validation result (see the module docstring)."""
        samples = self.samples
        result: dict[str, Any] = {"device": self.device_id, "kind": self.kind, "steps": 0}
        if not samples:
            return result
        twin = np.array([s.twin_p_kw for s in samples])
        device = np.array([s.device_p_kw for s in samples])
        diff = device - twin
        result.update(
            steps=len(samples),
            power_mae_kw=float(np.mean(np.abs(diff))),
            power_rmse_kw=float(np.sqrt(np.mean(diff**2))),
            power_max_abs_kw=float(np.max(np.abs(diff))),
        )
        twin_soc = np.array([s.twin_soc for s in samples])
        device_soc = np.array([s.device_soc for s in samples])
        both = np.isfinite(twin_soc) & np.isfinite(device_soc)
        if both.any():
            result["soc_mae"] = float(np.mean(np.abs(device_soc[both] - twin_soc[both])))
            idx = np.flatnonzero(both)
            result["soc_change_twin"] = float(twin_soc[idx[-1]] - twin_soc[idx[0]])
            result["soc_change_device"] = float(device_soc[idx[-1]] - device_soc[idx[0]])
        if self.kind == "battery":
            result.update(self._delays(commands))
        return result

    def _delays(self, commands: list[CommandRecord]) -> dict[str, Any]:
        samples = self.samples
        device_points = sorted(self.readings + [(x.wall_s, x.device_p_kw) for x in samples])
        twin_points = [(x.wall_s, x.twin_p_kw) for x in samples]
        delays_device: list[float] = []
        delays_twin: list[float] = []
        requests = _requests(commands)
        tol = self.tolerance_kw
        for i, (start, requested, target) in enumerate(requests):
            end = requests[i + 1][0] if i + 1 < len(requests) else math.inf
            found = _first_within(device_points, start, end, target, tol)
            if found is not None:
                delays_device.append(found)
            wanted = 0.0 if requested is None else requested
            twin_found = _first_within(twin_points, start, end, wanted, tol)
            if twin_found is not None:
                delays_twin.append(twin_found)
        result: dict[str, Any] = {
            "commands": len(requests),
            "commands_not_reached": len(requests) - len(delays_device),
        }
        for name, values in (("device", delays_device), ("twin", delays_twin)):
            result[f"{name}_delay_mean_s"] = float(np.mean(values)) if values else None
            result[f"{name}_delay_max_s"] = float(np.max(values)) if values else None
        return result

"""The shadow-mode report on known data: power and SOC differences, response delays."""

from __future__ import annotations

import math

import pytest

from qubit_sim.hil.bridge import CommandRecord
from qubit_sim.hil.shadow import ShadowRecorder, ShadowSample


def test_the_report_measures_differences_and_delays() -> None:
    recorder = ShadowRecorder("bess", "battery", tolerance_kw=0.2)
    # The stack asks 8 kW at t=10 s; a ramp lets 2, 4, then 5 kW through.
    commands = [
        CommandRecord(10.0, 8.0, 2.0, "clamped"),
        CommandRecord(10.5, 8.0, 4.0, "clamped"),
        CommandRecord(11.0, 8.0, 5.0, "clamped"),
        CommandRecord(20.0, None, 0.0, "safe"),
    ]
    recorder.add(ShadowSample(9.0, 0, 0.0, 0.0, 0.5, 0.6))
    recorder.add_reading(10.2, 1.0)
    recorder.add(ShadowSample(10.9, 60, 8.0, 3.0, 0.52, 0.6))
    recorder.add_reading(11.6, 4.9)
    recorder.add(ShadowSample(12.0, 120, 8.0, 5.0, 0.54, 0.61))
    report = recorder.report(commands)
    assert report["steps"] == 3
    assert report["power_mae_kw"] == pytest.approx((0 + 5 + 3) / 3)
    assert report["power_rmse_kw"] == pytest.approx(math.sqrt((25 + 9) / 3))
    assert report["power_max_abs_kw"] == 5.0
    assert report["soc_change_twin"] == pytest.approx(0.04)
    assert report["soc_change_device"] == pytest.approx(0.01)
    assert report["soc_mae"] == pytest.approx((0.1 + 0.08 + 0.07) / 3)
    assert report["commands"] == 1 and report["commands_not_reached"] == 0
    assert report["device_delay_max_s"] == pytest.approx(1.6)  # within 0.2 kW of 5 kW
    assert report["twin_delay_max_s"] == pytest.approx(0.9)


def test_an_empty_or_unreached_record_says_so() -> None:
    recorder = ShadowRecorder("bess", "battery")
    assert recorder.report([]) == {"device": "bess", "kind": "battery", "steps": 0}
    recorder.add(ShadowSample(1.0, 0, 3.0, 0.0, math.nan, math.nan))
    report = recorder.report([CommandRecord(0.5, 3.0, 3.0, "passed")])
    assert report["commands_not_reached"] == 1 and report["device_delay_mean_s"] is None
    assert "soc_mae" not in report

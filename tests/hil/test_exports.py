"""The public API of qubit_sim.hil is exactly what ``__all__`` names, and all of it exists."""

from __future__ import annotations

import qubit_sim.hil as hil


def test_all_is_pinned_and_sorted() -> None:
    assert hil.__all__ == sorted(hil.__all__)
    assert set(hil.__all__) == {
        "Bench", "BenchError", "CommandRecord", "Decision", "DeviceBridge", "DeviceReading",
        "DeviceSpec", "Envelope", "HilSimulation", "IdentityCheck", "Limits", "OcppCharger",
        "RegisterMapBattery", "RegisterMapPv", "ShadowRecorder", "ShadowSample", "SunSpecBattery",
        "SunSpecPv", "TeeLink",
        "Watchdog", "format_report", "load_bench", "load_bench_text", "make_device", "run_bench",
    }  # fmt: skip
    for name in hil.__all__:
        assert getattr(hil, name).__doc__, name

"""The safety envelope: nothing outside the limits is ever let through.

Claims checked here (properties over random limits, command sequences, SOCs and wall-clock
gaps): a let-through value lies within the rating window, respects the SOC window and the ramp
from the previous value sent; a clamp is the nearest allowed value; ``refuse`` lets nothing
out of bounds through and keeps the previous value; commands not allowed are refused; a
charger's "no cap" becomes its maximum.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qubit_sim.hil.bench import Limits
from qubit_sim.hil.envelope import Envelope

TOL = 1e-9


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


limits_st = st.builds(
    lambda ch, dis, lo, width, ramp, mode: Limits(
        max_charge_kw=ch,
        max_discharge_kw=dis,
        soc_min=lo,
        soc_max=min(1.0, lo + width),
        max_ramp_kw_per_s=ramp,
        on_violation=mode,
    ),
    st.floats(0, 50),
    st.floats(0, 50),
    st.floats(0, 0.5),
    st.floats(0.05, 0.5),
    st.none() | st.floats(0.1, 20),
    st.sampled_from(["clamp", "refuse"]),
)
command_st = st.tuples(
    st.none() | st.floats(-200, 200),  # requested kW
    st.none() | st.floats(0, 1),  # SOC
    st.floats(0, 5),  # wall seconds since the previous command
)


@given(limits_st, st.lists(command_st, min_size=1, max_size=30))
def test_nothing_outside_the_envelope_is_let_through(
    limits: Limits, commands: list[tuple[float | None, float | None, float]]
) -> None:
    clock = FakeClock()
    envelope = Envelope("dev", limits, "battery", clock=clock)
    previous, previous_t = 0.0, clock.t
    for requested, soc, gap in commands:
        clock.t += gap
        decision = envelope.check_power(requested, soc)
        if decision.sent_kw is None:
            assert decision.action == "refused" and limits.on_violation == "refuse"
            assert envelope.last_kw == previous
            continue
        sent = decision.sent_kw
        assert -limits.max_discharge_kw - TOL <= sent <= limits.max_charge_kw + TOL
        if limits.max_ramp_kw_per_s is not None:
            since = clock.t - previous_t
            assert abs(sent - previous) <= limits.max_ramp_kw_per_s * since + TOL
        if soc is not None and soc <= limits.soc_min:
            assert sent >= min(previous, 0.0) - TOL  # no new discharge below the window
        if soc is not None and soc >= limits.soc_max:
            assert sent <= max(previous, 0.0) + TOL
        wanted = 0.0 if requested is None else requested
        if decision.action == "passed":
            assert sent == wanted and decision.reason == ""
        else:
            assert decision.action == "clamped" and decision.reason
        previous, previous_t = sent, clock.t


@given(st.floats(-100, 100), st.floats(0.5, 30), st.floats(0.5, 30))
def test_a_clamp_is_the_nearest_allowed_value(requested: float, ch: float, dis: float) -> None:
    envelope = Envelope("dev", Limits(max_charge_kw=ch, max_discharge_kw=dis))
    decision = envelope.check_power(requested)
    assert decision.sent_kw == pytest.approx(min(max(requested, -dis), ch))


def test_the_ramp_climbs_with_wall_time() -> None:
    clock = FakeClock()
    limits = Limits(max_charge_kw=10, max_ramp_kw_per_s=2)
    envelope = Envelope("dev", limits, clock=clock)
    sent = []
    for _ in range(4):
        clock.t += 1.0
        sent.append(envelope.check_power(10.0).sent_kw)
    assert sent == [2.0, 4.0, 6.0, 8.0]
    assert "max_ramp_kw_per_s 2" in envelope.log[-1].reason
    assert envelope.counts == {"passed": 0, "clamped": 4, "refused": 0}


def test_soc_window_stops_discharge_at_the_bottom_and_charge_at_the_top() -> None:
    limits = Limits(max_charge_kw=5, max_discharge_kw=5, soc_min=0.2, soc_max=0.8)
    envelope = Envelope("dev", limits)
    low = envelope.check_power(-3.0, soc=0.15)
    assert low.sent_kw == 0.0 and "soc_min 0.2" in low.reason
    high = envelope.check_power(3.0, soc=0.85)
    assert high.sent_kw == 0.0 and "soc_max 0.8" in high.reason
    assert envelope.check_power(3.0, soc=0.15).action == "passed"


def test_refuse_keeps_the_previous_value() -> None:
    envelope = Envelope("dev", Limits(max_charge_kw=5, on_violation="refuse"))
    assert envelope.check_power(4.0).action == "passed"
    refused = envelope.check_power(6.0)
    assert refused.action == "refused" and refused.sent_kw is None
    assert envelope.last_kw == 4.0 and "above max_charge_kw 5" in refused.reason


def test_commands_not_allowed_are_refused() -> None:
    limits = Limits(max_charge_kw=5, allowed_commands=["set_availability"])
    envelope = Envelope("dev", limits)
    assert envelope.check_power(1.0).action == "refused"
    assert envelope.check_command("stop").action == "refused"
    assert envelope.check_command("set_availability").action == "passed"


def test_a_chargers_no_cap_becomes_its_maximum() -> None:
    envelope = Envelope("cp", Limits(max_charge_kw=7), "charger")
    decision = envelope.check_power(None)
    assert decision.sent_kw == 7.0 and decision.action == "passed"


def test_the_warning_gives_powers_to_the_watt(caplog: pytest.LogCaptureFixture) -> None:
    envelope = Envelope("bat", Limits(max_charge_kw=0.0236772139978, max_discharge_kw=5.0))
    with caplog.at_level("WARNING", logger="qubit_sim.hil.envelope"):
        envelope.check_power(3.14159265358979)
    (record,) = caplog.records
    assert "requested 3.142 kW, sent 0.024 kW" in record.getMessage()

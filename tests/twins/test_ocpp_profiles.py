"""Composite schedule rules: stack levels, purposes, A vs W, time anchoring, station sharing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qubit_sim.twins.ocpp_profiles import (
    ChargingProfile,
    Electrical,
    ProfileError,
    ProfileKind,
    ProfilePurpose,
    RateUnit,
    Recurrency,
    SchedulePeriod,
    TxContext,
    composite_limit_kw,
    composite_schedule,
    connector_limit_kw,
    from_kw,
    share_station_limit,
    station_limit_kw,
    to_kw,
)

E3 = Electrical(phases=3, voltage_v=230.0)
TX = TxContext("42", start_s=1000.0)
DAY = 86400.0


def profile(
    pid: int,
    purpose: ProfilePurpose,
    periods: list[tuple[int, float]] | list[tuple[int, float, int | None]],
    *,
    connector: int = 1,
    level: int = 0,
    unit: RateUnit = RateUnit.W,
    **kwargs: object,
) -> ChargingProfile:
    steps = tuple(SchedulePeriod(*p) for p in periods)
    kwargs.setdefault("start_s", 0.0)
    if purpose in (ProfilePurpose.STATION_MAX, ProfilePurpose.STATION_EXTERNAL):
        connector = 0
    return ChargingProfile(
        profile_id=pid,
        stack_level=level,
        purpose=purpose,
        unit=unit,
        periods=steps,
        connector=connector,
        **kwargs,  # type: ignore[arg-type]
    )


def own(profiles: list[ChargingProfile], t: float, tx: TxContext | None = TX) -> float | None:
    return connector_limit_kw(profiles, 1, t, tx=tx, electrical=E3)


def test_higher_stack_level_wins_and_falls_through_when_its_schedule_ends() -> None:
    base = profile(1, ProfilePurpose.TX_DEFAULT, [(0, 11000.0)], level=0)
    cap = profile(2, ProfilePurpose.TX_DEFAULT, [(0, 5000.0)], level=1, duration_s=600)
    assert own([base, cap], 100.0) == pytest.approx(5.0)
    assert own([base, cap], 600.0) == pytest.approx(11.0)
    assert own([cap, base], 599.0) == pytest.approx(5.0)  # order of installation is irrelevant


def test_periods_step_at_their_start_offsets() -> None:
    steps = profile(1, ProfilePurpose.TX_DEFAULT, [(0, 7000.0), (900, 3000.0), (1800, 0.0)])
    assert own([steps], 899.0) == pytest.approx(7.0)
    assert own([steps], 900.0) == pytest.approx(3.0)
    assert own([steps], 5000.0) == 0.0


def test_tx_profile_overrules_tx_default_of_any_stack_level() -> None:
    default = profile(1, ProfilePurpose.TX_DEFAULT, [(0, 2000.0)], level=7)
    tx_profile = profile(2, ProfilePurpose.TX, [(0, 9000.0)], level=0, transaction_id="42")
    assert own([default, tx_profile], 1500.0) == pytest.approx(9.0)
    # Without a transaction, or for another transaction, the TxProfile does not apply.
    assert own([default, tx_profile], 1500.0, tx=None) == pytest.approx(2.0)
    other = TxContext("43", 1000.0)
    assert own([default, tx_profile], 1500.0, tx=other) == pytest.approx(2.0)


def test_connector_specific_default_beats_connector_zero_at_equal_stack_level() -> None:
    everywhere = profile(1, ProfilePurpose.TX_DEFAULT, [(0, 4000.0)], connector=0, level=2)
    here = profile(2, ProfilePurpose.TX_DEFAULT, [(0, 6000.0)], connector=1, level=2)
    elsewhere = profile(3, ProfilePurpose.TX_DEFAULT, [(0, 1000.0)], connector=2, level=5)
    assert own([everywhere, here, elsewhere], 10.0) == pytest.approx(6.0)
    assert own([everywhere, elsewhere], 10.0) == pytest.approx(4.0)


def test_station_profile_caps_the_connector_composite() -> None:
    default = profile(1, ProfilePurpose.TX_DEFAULT, [(0, 11000.0)])
    station = profile(2, ProfilePurpose.STATION_MAX, [(0, 8000.0)])
    external = profile(3, ProfilePurpose.STATION_EXTERNAL, [(0, 6000.0)], start_s=500.0)
    both = [default, station, external]
    assert composite_limit_kw(both, 1, 100.0, tx=TX, electrical=E3) == pytest.approx(8.0)
    assert composite_limit_kw(both, 1, 600.0, tx=TX, electrical=E3) == pytest.approx(6.0)
    assert composite_limit_kw(both, 0, 100.0, tx=None, electrical=E3) == pytest.approx(8.0)
    assert station_limit_kw([default], 100.0, electrical=E3) is None


@pytest.mark.parametrize(
    ("amps", "number_phases", "electrical", "expected_kw"),
    [
        (16.0, None, Electrical(3, 230.0), 16 * 230 * 3 / 1000),
        (16.0, 1, Electrical(3, 230.0), 16 * 230 / 1000),
        (16.0, 3, Electrical(1, 230.0), 16 * 230 / 1000),  # a 1-phase connector cannot use 3
        (32.0, None, Electrical(3, 240.0), 32 * 240 * 3 / 1000),
        (10.0, 2, Electrical(3, 220.0), 10 * 220 * 2 / 1000),
    ],
)
def test_current_limits_convert_with_phases_and_measured_voltage(
    amps: float, number_phases: int | None, electrical: Electrical, expected_kw: float
) -> None:
    amp_profile = profile(1, ProfilePurpose.TX_DEFAULT, [(0, amps, number_phases)], unit=RateUnit.A)
    got = connector_limit_kw([amp_profile], 1, 5.0, tx=None, electrical=electrical)
    assert got == pytest.approx(expected_kw)


@given(
    p_kw=st.floats(0.0, 400.0),
    phases=st.sampled_from([1, 3]),
    volts=st.floats(180.0, 260.0),
)
def test_kw_amp_conversion_round_trips(p_kw: float, phases: int, volts: float) -> None:
    electrical = Electrical(phases, volts)
    for unit in RateUnit:
        assert to_kw(from_kw(p_kw, unit, electrical), unit, None, electrical) == pytest.approx(
            p_kw, abs=1e-9
        )


def test_daily_recurring_profile_repeats_every_day() -> None:
    evening = profile(
        1,
        ProfilePurpose.TX_DEFAULT,
        [(0, 3000.0)],
        kind=ProfileKind.RECURRING,
        recurrency=Recurrency.DAILY,
        start_s=18 * 3600.0,
        duration_s=4 * 3600.0,
    )
    for day in (0, 1, 5):
        assert own([evening], day * DAY + 19 * 3600.0, tx=None) == pytest.approx(3.0)
        assert own([evening], day * DAY + 23 * 3600.0, tx=None) is None
    assert own([evening], 17 * 3600.0, tx=None) is None  # before the first occurrence


def test_relative_profile_is_anchored_at_the_transaction_start() -> None:
    ramp = profile(
        1,
        ProfilePurpose.TX_DEFAULT,
        [(0, 2000.0), (600, 7000.0)],
        kind=ProfileKind.RELATIVE,
        start_s=None,
    )
    assert own([ramp], TX.start_s + 599.0) == pytest.approx(2.0)
    assert own([ramp], TX.start_s + 600.0) == pytest.approx(7.0)


def test_validity_window_bounds_a_profile() -> None:
    window = profile(
        1, ProfilePurpose.TX_DEFAULT, [(0, 1000.0)], valid_from_s=100.0, valid_to_s=200.0
    )
    assert own([window], 99.0) is None
    assert own([window], 100.0) == pytest.approx(1.0)
    assert own([window], 200.0) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"periods": ((10, 1.0, None),)}, "must be 0"),
        ({"periods": ((0, 1.0, None), (0, 2.0, None))}, "strictly increase"),
        ({"periods": ((0, -1.0, None),)}, ">= 0"),
        ({"periods": ((0, math.nan, None),)}, ">= 0"),
        ({"purpose": ProfilePurpose.TX, "connector": 0}, "TxProfile"),
        ({"purpose": ProfilePurpose.STATION_MAX, "connector": 2}, "station profile"),
        ({"start_s": None}, "schedule start"),
        ({"kind": ProfileKind.RECURRING}, "recurrencyKind"),
        ({"duration_s": 0.0}, "duration"),
        (
            {"purpose": ProfilePurpose.STATION_MAX, "connector": 0, "kind": ProfileKind.RELATIVE},
            "cannot be Relative",
        ),
    ],
)
def test_inconsistent_profiles_are_refused_with_a_reason(kwargs: dict, match: str) -> None:
    fields: dict = {
        "profile_id": 1,
        "stack_level": 0,
        "purpose": ProfilePurpose.TX_DEFAULT,
        "unit": RateUnit.W,
        "periods": ((0, 1000.0, None),),
        "connector": 1,
        "start_s": 0.0,
    }
    fields.update(kwargs)
    fields["periods"] = tuple(SchedulePeriod(*p) for p in fields["periods"])
    with pytest.raises(ProfileError, match=match):
        ChargingProfile(**fields)


def test_composite_schedule_lists_every_change_in_the_window() -> None:
    base = profile(1, ProfilePurpose.TX_DEFAULT, [(0, 11000.0)])
    cap = profile(
        2,
        ProfilePurpose.TX_DEFAULT,
        [(0, 4000.0), (1200, 6000.0)],
        level=1,
        start_s=600.0,
        duration_s=1800,
    )
    station = profile(3, ProfilePurpose.STATION_MAX, [(0, 5000.0)], start_s=1500.0)
    steps = composite_schedule(
        [base, cap, station], 1, 0.0, 3600.0, tx=TX, electrical=E3, default_kw=22.0
    )
    # 4 kW under the 5 kW station cap from 1500 s; at 1800 s the cap (5) is below 6 kW.
    assert steps == [(0, 11.0), (600, 4.0), (1800, 5.0)]


_purposes = st.sampled_from(list(ProfilePurpose))
_seconds = st.integers(-86400, 86400)


@st.composite
def random_profiles(draw: st.DrawFn) -> list[ChargingProfile]:
    profiles = []
    for pid in range(draw(st.integers(0, 5))):
        purpose = draw(_purposes)
        kinds = [ProfileKind.ABSOLUTE, ProfileKind.RECURRING]
        if purpose in (ProfilePurpose.TX, ProfilePurpose.TX_DEFAULT):
            kinds.append(ProfileKind.RELATIVE)
        kind = draw(st.sampled_from(kinds))
        starts = sorted(draw(st.sets(st.integers(1, 20000), max_size=3)))
        periods = [(0, draw(st.floats(0, 22000)), draw(st.sampled_from([None, 1, 3])))]
        periods += [(s, draw(st.floats(0, 22000)), None) for s in starts]
        profiles.append(
            profile(
                pid,
                purpose,
                periods,
                connector=draw(st.sampled_from([0, 1]))
                if purpose is ProfilePurpose.TX_DEFAULT
                else 1,
                level=draw(st.integers(0, 3)),
                unit=draw(st.sampled_from(list(RateUnit))),
                kind=kind,
                # Whole seconds: the schedule reports integer offsets.
                start_s=None if kind is ProfileKind.RELATIVE else float(draw(_seconds)),
                recurrency=Recurrency.DAILY if kind is ProfileKind.RECURRING else None,
                duration_s=draw(st.one_of(st.none(), st.integers(1, 30000).map(float))),
                valid_from_s=draw(st.one_of(st.none(), _seconds.map(float))),
                transaction_id=draw(st.sampled_from([None, "42", "7"]))
                if purpose is ProfilePurpose.TX
                else None,
            )
        )
    return profiles


@settings(max_examples=150, deadline=None)
@given(
    profiles=random_profiles(),
    start=st.integers(0, 2 * 86400),
    with_tx=st.booleans(),
    probes=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=8),
)
def test_composite_schedule_agrees_with_the_limit_at_every_instant(
    profiles: list[ChargingProfile], start: int, with_tx: bool, probes: list[float]
) -> None:
    duration = 86400
    tx = TxContext("42", start - 300.0) if with_tx else None
    steps = composite_schedule(
        profiles, 1, float(start), duration, tx=tx, electrical=E3, default_kw=22.0
    )
    assert steps[0][0] == 0
    assert all(b[0] > a[0] and b[1] != a[1] for a, b in zip(steps, steps[1:], strict=False))
    for fraction in probes:
        t = start + int(fraction * duration)
        if tx is not None:
            expected = composite_limit_kw(profiles, 1, float(t), tx=tx, electrical=E3)
        else:
            expected = _limit_without_tx(profiles, t, start)
        expected = 22.0 if expected is None else min(expected, 22.0)
        in_force = [v for offset, v in steps if offset <= t - start][-1]
        assert in_force == pytest.approx(expected), (t, steps)


def _limit_without_tx(profiles: list[ChargingProfile], t: int, start: int) -> float | None:
    # Without a transaction, relative profiles are anchored at the window start.
    shifted = [
        p
        if p.kind is not ProfileKind.RELATIVE
        else ChargingProfile(
            **{**p.__dict__, "kind": ProfileKind.ABSOLUTE, "start_s": float(start)}
        )
        for p in profiles
        if p.purpose is not ProfilePurpose.TX
    ]
    return composite_limit_kw(shifted, 1, float(t), tx=None, electrical=E3)


@given(
    demands=st.dictionaries(st.integers(1, 8), st.floats(0.0, 50.0), max_size=8),
    station=st.floats(0.0, 120.0),
)
def test_station_sharing_never_exceeds_station_or_demands(
    demands: dict[int, float], station: float
) -> None:
    shares = share_station_limit(demands, station)
    assert set(shares) == set(demands)
    assert sum(shares.values()) <= station + 1e-9 or sum(demands.values()) <= station
    for connector, share in shares.items():
        assert 0.0 <= share <= demands[connector] + 1e-12
    if sum(demands.values()) <= station:
        assert shares == demands
    else:
        assert sum(shares.values()) == pytest.approx(station)
        # Everyone held below its demand gets the same (largest) share.
        held = [shares[c] for c in demands if shares[c] < demands[c] - 1e-9]
        if held:
            assert max(held) - min(held) < 1e-9
            assert all(shares[c] <= max(held) + 1e-9 for c in demands)

"""Profiles off the wire, installation rules, and the configuration in both addressings."""

from __future__ import annotations

import pytest
from ocpp.charge_point import camel_to_snake_case

from qubit_sim.protocols.ocpp_common import DEFAULT_EPOCH, iso_to_sim, sim_to_iso
from qubit_sim.twins.ocpp_config import TwinConfig
from qubit_sim.twins.ocpp_profiles import (
    ChargingProfile,
    ProfileError,
    ProfileKind,
    ProfilePurpose,
    RateUnit,
    Recurrency,
    SchedulePeriod,
    TxContext,
)
from qubit_sim.twins.ocpp_smart import ProfileStore, profile_from_v16, profile_from_v201


def v16(**overrides: object) -> dict:
    data = {
        "chargingProfileId": 5,
        "stackLevel": 2,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Recurring",
        "recurrencyKind": "Daily",
        "validTo": "2025-01-03T00:00:00Z",
        "chargingSchedule": {
            "duration": 7200,
            "startSchedule": "2025-01-01T18:00:00Z",
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 16.0, "numberPhases": 1},
                {"startPeriod": 3600, "limit": 8.0},
            ],
            "minChargingRate": 6.0,
        },
    }
    data.update(overrides)
    return camel_to_snake_case(data)


def test_v16_profile_is_read_into_simulation_time() -> None:
    profile = profile_from_v16(v16(), 2, now_s=0.0, start_utc=DEFAULT_EPOCH)
    assert profile.profile_id == 5 and profile.connector == 2 and profile.stack_level == 2
    assert profile.purpose is ProfilePurpose.TX_DEFAULT
    assert profile.kind is ProfileKind.RECURRING and profile.recurrency is Recurrency.DAILY
    assert profile.unit is RateUnit.A
    assert profile.start_s == 18 * 3600.0
    assert profile.valid_to_s == 2 * 86400.0
    assert profile.duration_s == 7200.0
    assert profile.periods == (SchedulePeriod(0, 16.0, 1), SchedulePeriod(3600, 8.0, None))
    assert profile.min_rate == 6.0


def test_v201_profile_uses_the_first_schedule_and_string_transaction_ids() -> None:
    data = camel_to_snake_case(
        {
            "id": 9,
            "stackLevel": 0,
            "chargingProfilePurpose": "ChargingStationMaxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {
                    "id": 1,
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 40000.0}],
                },
                {
                    "id": 2,
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 1.0}],
                },
            ],
        }
    )
    profile = profile_from_v201(data, 0, now_s=123.0, start_utc=DEFAULT_EPOCH)
    assert profile.purpose is ProfilePurpose.STATION_MAX
    assert profile.unit is RateUnit.W and profile.periods[0].limit == 40000.0
    assert profile.start_s == 123.0  # Absolute without a start runs from its arrival


def test_relative_station_profile_starts_on_arrival() -> None:
    data = v16(chargingProfilePurpose="ChargePointMaxProfile", chargingProfileKind="Relative")
    del data["recurrency_kind"]
    profile = profile_from_v16(data, 0, now_s=50.0, start_utc=DEFAULT_EPOCH)
    assert profile.kind is ProfileKind.ABSOLUTE and profile.start_s == 50.0


@pytest.mark.parametrize(
    "overrides",
    [
        {"validFrom": "yesterday"},
        {"chargingProfilePurpose": "ChargingStationMaxProfile"},  # a 2.0.1 name in 1.6
        {"chargingSchedule": {"chargingRateUnit": "W", "chargingSchedulePeriod": []}},
    ],
)
def test_unreadable_profiles_raise_profile_error(overrides: dict) -> None:
    with pytest.raises(ProfileError):
        profile_from_v16(v16(**overrides), 1, now_s=0.0, start_utc=DEFAULT_EPOCH)


def _p(
    pid: int,
    purpose: ProfilePurpose,
    connector: int = 1,
    level: int = 0,
    periods: int = 1,
    tx: str | None = None,
) -> ChargingProfile:
    return ChargingProfile(
        profile_id=pid,
        stack_level=level,
        purpose=purpose,
        unit=RateUnit.W,
        periods=tuple(SchedulePeriod(60 * i, 1000.0) for i in range(periods)),
        connector=connector,
        start_s=0.0,
        transaction_id=tx,
    )


def test_store_replaces_by_id_and_by_connector_purpose_and_level() -> None:
    store = ProfileStore(2)
    assert store.install(_p(1, ProfilePurpose.TX_DEFAULT, level=1), {})[0]
    assert store.install(_p(2, ProfilePurpose.TX_DEFAULT, level=1), {})[0]  # same slot
    assert [p.profile_id for p in store.profiles] == [2]
    assert store.install(_p(2, ProfilePurpose.TX_DEFAULT, connector=2, level=3), {})[0]
    assert [(p.profile_id, p.connector) for p in store.profiles] == [(2, 2)]


def test_store_rules_reject_with_a_reason() -> None:
    store = ProfileStore(2, max_stack_level=3, max_periods=4, max_profiles=2)
    tx = {1: TxContext("17", 0.0)}
    cases = [
        (_p(1, ProfilePurpose.TX_DEFAULT, connector=3), "does not exist"),
        (_p(1, ProfilePurpose.TX_DEFAULT, level=4), "stackLevel"),
        (_p(1, ProfilePurpose.TX_DEFAULT, periods=5), "periods"),
        (_p(1, ProfilePurpose.TX, connector=2), "no transaction"),
        (_p(1, ProfilePurpose.TX, tx="18"), "not the running transaction"),
    ]
    for profile, reason in cases:
        accepted, why = store.install(profile, tx)
        assert not accepted and reason in why
    assert store.install(_p(1, ProfilePurpose.TX, tx="17"), tx)[0]
    assert store.install(_p(2, ProfilePurpose.TX_DEFAULT), tx)[0]
    accepted, why = store.install(_p(3, ProfilePurpose.TX_DEFAULT, level=2), tx)
    assert not accepted and "already 2" in why


def test_store_clears_by_criteria_and_drops_tx_profiles_with_their_transaction() -> None:
    store = ProfileStore(2)
    tx = {1: TxContext("1", 0.0)}
    store.install(_p(1, ProfilePurpose.TX, tx="1"), tx)
    store.install(_p(2, ProfilePurpose.TX_DEFAULT, connector=2), tx)
    store.install(_p(3, ProfilePurpose.STATION_MAX, connector=0), tx)
    assert store.clear(purpose=ProfilePurpose.STATION_MAX) == 1
    assert store.clear(profile_id=99) == 0
    store.end_transaction(1)
    assert [p.profile_id for p in store.profiles] == [2]
    assert store.clear() == 1 and store.profiles == ()


def test_config_v16_keys() -> None:
    config = TwinConfig(n_connectors=2, heartbeat_s=300, meter_interval_s=60)
    found, unknown = config.get_v16(["HeartbeatInterval", "NumberOfConnectors", "Nope"])
    assert found == [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
        {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
    ]
    assert unknown == ["Nope"]
    assert config.change_v16("heartbeatinterval", "30") == "Accepted"
    assert config["heartbeat_interval_s"] == 30
    assert config.change_v16("HeartbeatInterval", "0") == "Rejected"  # below the minimum
    assert config.change_v16("HeartbeatInterval", "soon") == "Rejected"
    assert config.change_v16("NumberOfConnectors", "4") == "Rejected"
    assert config.change_v16("Unheard", "1") == "NotSupported"
    assert config.change_v16("LocalAuthorizeOffline", "FALSE") == "Accepted"
    assert config["local_authorize_offline"] is False
    all_keys, _ = config.get_v16(None)
    assert len(all_keys) > 10


def test_config_v201_variables_map_onto_the_same_entries() -> None:
    config = TwinConfig(n_connectors=1)
    assert config.set_v201("SampledDataCtrlr", "TxUpdatedInterval", "15") == "Accepted"
    assert config["meter_interval_s"] == 15
    assert config.get_v16(["MeterValueSampleInterval"])[0][0]["value"] == "15"
    assert config.get_v201("OCPPCommCtrlr", "HeartbeatInterval") == ("Accepted", "300")
    assert config.get_v201("OCPPCommCtrlr", "Nope") == ("UnknownVariable", None)
    assert config.get_v201("Nope", "Nope") == ("UnknownComponent", None)
    assert config.set_v201("SmartChargingCtrlr", "ProfileStackLevel", "3") == "Rejected"
    config.put("measurands", "Energy.Active.Import.Register, SoC")
    assert config.measurands() == {"Energy.Active.Import.Register", "SoC"}


def test_iso_and_simulation_time_round_trip() -> None:
    for t in (0.0, 0.25, 86399.5, 3 * 86400.0):
        assert iso_to_sim(DEFAULT_EPOCH, sim_to_iso(DEFAULT_EPOCH, t)) == pytest.approx(t)
    assert iso_to_sim(DEFAULT_EPOCH, "2025-01-01T01:00:00+01:00") == 0.0
    with pytest.raises(ValueError, match="cannot read timestamp"):
        iso_to_sim(DEFAULT_EPOCH, "not a time")

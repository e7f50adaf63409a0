"""Commands, links, registry and time conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from qubit_sim.errors import ProtocolError
from qubit_sim.stack.coordinate import (
    AdapterRegistry,
    BatteryLink,
    ChargerLink,
    Command,
    CommandError,
    CommandState,
    CommandType,
    CoordinationError,
    CoordinatorConfig,
    DeviceLink,
    LinkError,
    LinkNotFoundError,
    LinkRegistry,
    LinkResult,
    PvLink,
    Reply,
    Telemetry,
    TimeBaseError,
    iso_z,
    retry_delay_s,
    to_utc,
)

T0 = datetime(2025, 1, 15, 8, 0, tzinfo=UTC)


class StoreLink:
    """Minimal in-memory device: applies every request."""

    def __init__(self, asset_id: str) -> None:
        self.asset_id = asset_id
        self.limit_kw = 0.0
        self.running = False
        self.available = True

    def set_power_limit(self, kw: float) -> LinkResult:
        self.limit_kw = kw
        return LinkResult.ok()

    def start(self) -> LinkResult:
        self.running = True
        return LinkResult.ok()

    def stop(self) -> LinkResult:
        self.running = False
        return LinkResult.ok()

    def set_availability(self, available: bool) -> LinkResult:
        self.available = available
        return LinkResult.ok()

    def read(self) -> Telemetry:
        return Telemetry(self.asset_id, 0, self.limit_kw, "IDLE", power_limit_kw=self.limit_kw)


def test_command_defaults_and_creation_history() -> None:
    command = Command("cmd_1", "ast_a", "SET_CHARGE_RATE", T0, value_kw=11)
    assert command.type is CommandType.SET_CHARGE_RATE
    assert command.state is CommandState.PENDING
    assert (command.max_retries, command.timeout_seconds, command.priority) == (3, 30.0, 1)
    assert command.value_kw == 11.0 and isinstance(command.value_kw, float)
    assert command.history[0].from_state is None
    assert command.history[0].to_state is CommandState.PENDING
    assert command.due_at == T0 and not command.is_terminal and command.is_setpoint


def test_discharge_setpoint_is_negative_in_load_convention() -> None:
    discharge = Command("c", "ast_b", CommandType.SET_DISCHARGE_RATE, T0, value_kw=20.0)
    assert discharge.signed_setpoint_kw == -20.0
    zero = Command("c0", "ast_b", CommandType.SET_DISCHARGE_RATE, T0, value_kw=0.0)
    assert str(zero.signed_setpoint_kw) == "0.0"  # not -0.0
    start = Command("c1", "ast_b", CommandType.START_CHARGING, T0)
    assert start.signed_setpoint_kw is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(type="SET_CHARGE_RATE", value_kw=-1.0), "value_kw >= 0"),
        (dict(type="SET_CHARGE_RATE", value_kw=float("nan")), "value_kw >= 0"),
        (dict(type="SET_CHARGE_RATE"), "value_kw >= 0"),
        (dict(type="CHANGE_AVAILABILITY"), "available=True/False"),
        (dict(type="CHANGE_AVAILABILITY", available=True, value_kw=1.0), "takes no value_kw"),
        (dict(type="START_CHARGING", value_kw=3.0), "takes neither"),
        (dict(type="BOOST"), "BOOST"),
        (dict(type="STOP_CHARGING", max_retries=-1), "max_retries -1"),
        (dict(type="STOP_CHARGING", timeout_seconds=0), "timeout_seconds"),
        (dict(type="STOP_CHARGING", priority=0), "priority 0"),
        (dict(type="STOP_CHARGING", asset_id=""), "asset_id"),
    ],
)
def test_command_validation_names_the_field(kwargs: dict, match: str) -> None:
    args = dict(command_id="cmd_x", asset_id="ast_a", scheduled_at=T0)
    args.update(kwargs)
    with pytest.raises(CommandError, match=match):
        Command(**args)


def test_command_scheduled_at_must_be_aware() -> None:
    with pytest.raises(TimeBaseError, match="naive"):
        Command("c", "ast_a", CommandType.STOP_CHARGING, datetime(2025, 1, 1))


def test_lifecycle_rejects_illegal_moves() -> None:
    command = Command("c", "ast_a", CommandType.STOP_CHARGING, T0)
    with pytest.raises(CommandError, match="cannot go from PENDING to COMPLETED"):
        command.transition(CommandState.COMPLETED, T0)
    command.transition(CommandState.DISPATCHED, T0)
    command.transition(CommandState.ACKNOWLEDGED, T0)
    command.transition(CommandState.COMPLETED, T0, "done")
    assert command.is_terminal
    with pytest.raises(CommandError, match="none \\(final state\\)"):
        command.transition(CommandState.CANCELLED, T0)
    assert [h.to_state for h in command.history] == [
        CommandState.PENDING,
        CommandState.DISPATCHED,
        CommandState.ACKNOWLEDGED,
        CommandState.COMPLETED,
    ]
    assert command.history[-1].note == "done"


def test_retry_delays_follow_the_backoff() -> None:
    assert [retry_delay_s(k, 5.0, 2.0) for k in (1, 2, 3)] == [5.0, 10.0, 20.0]
    assert retry_delay_s(2, 1.0, 3.0) == 3.0
    with pytest.raises(CommandError):
        retry_delay_s(0, 5.0, 2.0)


def test_config_defaults_and_validation() -> None:
    config = CoordinatorConfig(site_id="sit_depot_1")
    assert (
        config.dispatch_interval_seconds,
        config.command_timeout_seconds,
        config.max_retries,
        config.retry_backoff_factor,
        config.stale_state_seconds,
    ) == (5.0, 30.0, 3, 2.0, 60.0)
    with pytest.raises(CoordinationError, match="sit_"):
        CoordinatorConfig(site_id="depot")
    with pytest.raises(CoordinationError, match="retry_backoff_factor"):
        CoordinatorConfig(site_id="sit_a", retry_backoff_factor=0.5)
    with pytest.raises(CoordinationError, match="command_timeout_seconds"):
        CoordinatorConfig(site_id="sit_a", command_timeout_seconds=0)
    with pytest.raises(CoordinationError, match="max_retries"):
        CoordinatorConfig(site_id="sit_a", max_retries=1.5)  # type: ignore[arg-type]


def test_registry_lookup_replace_and_did_you_mean() -> None:
    registry = LinkRegistry()
    link = StoreLink("ast_charger_bay_1")
    registry.register("ast_charger_bay_1", link)
    assert registry.get("ast_charger_bay_1") is link
    assert "ast_charger_bay_1" in registry and len(registry) == 1
    with pytest.raises(LinkNotFoundError) as info:
        registry.get("ast_charger_bay1")
    assert info.value.suggestion == "ast_charger_bay_1"
    assert "did you mean 'ast_charger_bay_1'" in str(info.value)
    with pytest.raises(CoordinationError, match="already has a link"):
        registry.register("ast_charger_bay_1", StoreLink("x"))
    other = StoreLink("ast_charger_bay_1")
    registry.register("ast_charger_bay_1", other, replace=True)
    assert registry.unregister("ast_charger_bay_1") is other
    assert registry.asset_ids() == []
    assert AdapterRegistry is LinkRegistry


def test_registry_rejects_objects_without_the_link_calls() -> None:
    class HalfLink:
        def set_power_limit(self, kw: float) -> LinkResult:
            return LinkResult.ok()

    with pytest.raises(CoordinationError, match="missing start, stop, set_availability, read"):
        LinkRegistry().register("ast_a", HalfLink())  # type: ignore[arg-type]


def test_protocols_recognise_a_structural_link() -> None:
    link = StoreLink("ast_a")
    for protocol in (DeviceLink, ChargerLink, BatteryLink, PvLink):
        assert isinstance(link, protocol)
    assert not isinstance(object(), DeviceLink)
    assert link.read().power_limit_kw == 0.0


def test_link_results_and_replies() -> None:
    assert LinkResult.ok().is_final and LinkResult.ok().accepted
    refused = LinkResult.rejected("SOC too high")
    assert (refused.accepted, refused.error, refused.is_final) == (False, "SOC too high", True)
    pending = LinkResult.pending()
    assert pending.accepted and not pending.is_final and pending.reply is not None
    assert not pending.reply.done and pending.reply.success is None
    pending.reply.resolve(False, "Rejected")
    assert (pending.reply.done, pending.reply.success, pending.reply.error) == (
        True,
        False,
        "Rejected",
    )
    with pytest.raises(LinkError, match="answered once"):
        pending.reply.resolve(True)
    with pytest.raises(CoordinationError, match="accepted=True"):
        LinkResult(False, "x", Reply())
    assert issubclass(LinkError, ProtocolError)


def test_telemetry_validates_soc_fraction_and_power() -> None:
    Telemetry("ast_b", 0, -12.5, "DISCHARGING", soc=0.4, e_kwh=3.2)
    with pytest.raises(CoordinationError, match="fraction"):
        Telemetry("ast_b", 0, 1.0, "IDLE", soc=55.0)
    with pytest.raises(CoordinationError, match="not finite"):
        Telemetry("ast_b", 0, float("inf"), "IDLE")


def test_time_conversion() -> None:
    assert to_utc(90, T0) == T0 + timedelta(seconds=90)
    assert to_utc(pd.Timestamp("2025-01-15 09:00", tz="Europe/Amsterdam")) == T0
    assert type(to_utc(pd.Timestamp("2025-01-15 08:00", tz="UTC"))) is datetime
    plus_one = timezone(timedelta(hours=1))
    assert to_utc(datetime(2025, 1, 15, 9, tzinfo=plus_one)) == T0
    with pytest.raises(TimeBaseError, match="no epoch"):
        to_utc(5)
    with pytest.raises(TimeBaseError, match="naive"):
        to_utc(datetime(2025, 1, 15))
    with pytest.raises(TimeBaseError, match="bool"):
        to_utc(True, T0)
    assert iso_z(T0) == "2025-01-15T08:00:00Z"
    assert iso_z(T0 + timedelta(microseconds=250_000)) == "2025-01-15T08:00:00.250Z"

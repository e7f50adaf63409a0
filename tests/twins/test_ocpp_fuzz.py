"""Malformed and random frames sent to the charge point twin by a hostile CSMS: the twin answers
with the right CALLERROR (or ignores broken replies) and keeps serving; its device survives."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
import websockets
from hypothesis import strategies as st
from support.loop import LoopThread
from support.ocpp_fuzz import near_valid_test, random_json_test, random_text_test, spelled

from qubit_sim.twins.charger_device import EvState, SimpleCharger
from qubit_sim.twins.ocpp_cp import OcppChargePointTwin

RECV_TIMEOUT_S = 3.0
NOW = "2025-01-01T00:00:00Z"


class HostileCsms:
    """Answers the twin's own requests minimally; hands everything else to the test."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.conn: Any = None
        self.replies: asyncio.Queue[list[Any]] = asyncio.Queue()
        self.server: Any = None

    async def start(self) -> str:
        self.server = await websockets.serve(
            self._handle,
            "127.0.0.1",
            0,
            subprotocols=[f"ocpp{self.version}"],  # type: ignore[list-item]
        )
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, ws: Any) -> None:
        self.conn = ws
        async for raw in ws:
            message = json.loads(raw)
            if message[0] != 2:
                await self.replies.put(message)
                continue
            answers = {
                "BootNotification": {"currentTime": NOW, "interval": 300, "status": "Accepted"},
                "Heartbeat": {"currentTime": NOW},
            }
            if self.version == "1.6":
                answers["StartTransaction"] = {
                    "transactionId": 1,
                    "idTagInfo": {"status": "Accepted"},
                }
                answers["Authorize"] = {"idTagInfo": {"status": "Accepted"}}
            else:
                answers["Authorize"] = {"idTokenInfo": {"status": "Accepted"}}
            await ws.send(json.dumps([3, message[1], answers.get(message[2], {})]))

    async def send(self, frame: str | bytes) -> None:
        await self.conn.send(frame)

    async def next_reply(self) -> list[Any]:
        return await asyncio.wait_for(self.replies.get(), RECV_TIMEOUT_S)


class Harness:
    def __init__(self, version: str) -> None:
        self.version = version
        self.loop = LoopThread()
        self.csms = HostileCsms(version)
        url = self.loop.call(self.csms.start())
        self.device = SimpleCharger(n_connectors=2)
        self.twin = OcppChargePointTwin(
            self.device, "FUZZ", url, version=version, clock=lambda: 0.0
        )
        self.loop.call(self.twin.connect())
        self.device.plug_in(1, EvState(capacity_kwh=40.0, soc=0.5))
        self.loop.call(self.twin.tick())  # a transaction is running on connector 1
        self.ids = itertools.count()

    def exchange(self, frame: str | bytes) -> list[list[Any]]:
        """Send ``frame`` then a configuration read; return the replies before the read's."""
        self.loop.call(self.csms.send(frame))
        probe = f"probe-{next(self.ids)}"
        if self.version == "1.6":
            request = [2, probe, "GetConfiguration", {"key": ["NumberOfConnectors"]}]
        else:
            request = [
                2,
                probe,
                "GetVariables",
                {
                    "getVariableData": [
                        {
                            "component": {"name": "OCPPCommCtrlr"},
                            "variable": {"name": "HeartbeatInterval"},
                        }
                    ]
                },
            ]
        self.loop.call(self.csms.send(json.dumps(request)))
        replies = []
        while True:
            reply = self.loop.call(self.csms.next_reply())
            if reply[1] == probe:
                assert reply[0] == 3, reply
                return replies
            replies.append(reply)

    def close(self) -> None:
        self.loop.call(self.twin.close())
        self.csms.server.close()
        self.loop.close()


@pytest.fixture(scope="module", params=["1.6", "2.0.1"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    rig = Harness(request.param)
    yield rig
    assert rig.twin.online  # nothing sent by the CSMS broke the session
    rig.close()


@pytest.fixture(scope="module")
def peer(harness: Harness) -> Harness:
    """The rig under the name the shared fuzz tests of ``support.ocpp_fuzz`` ask for."""
    return harness


def unreadable(version: str) -> str:
    """The code for a frame whose message id cannot be read: 2.0.1 names it RpcFrameworkError,
    1.6 (without that code) FormationViolation."""
    return spelled(version, "format" if version == "1.6" else "rpc")


@pytest.mark.parametrize(
    ("frame", "expected_id", "kind"),
    [
        ("{{{", "-1", "unreadable"),
        ("[]", "-1", "rpc"),
        ('[2, "b1", "GetConfiguration"]', "b1", "rpc"),
        ('[2, "b2", "Reset", "Hard"]', "b2", "format"),
        # An action no version defines is not known: NotImplemented ...
        ('[2, "b3", "Teleport", {}]', "b3", "NotImplemented"),
        # ... one the version defines but a charge point does not take is NotSupported.
        (
            '[2, "b4", "BootNotification", {"chargePointVendor": "v", "chargePointModel": "m"}]',
            "b4",
            "NotSupported",
        ),
    ],
)
def test_malformed_requests_get_the_specified_callerror(
    harness: Harness, frame: str, expected_id: str, kind: str
) -> None:
    (reply,) = harness.exchange(frame)
    code = unreadable(harness.version) if kind == "unreadable" else spelled(harness.version, kind)
    assert reply[:3] == [4, expected_id, code]


def test_schema_violations_in_smart_charging_requests(harness: Harness) -> None:
    if harness.version == "1.6":
        frame = [2, "c1", "SetChargingProfile", {"connectorId": "one", "csChargingProfiles": {}}]
    else:
        frame = [2, "c1", "SetChargingProfile", {"evseId": "one", "chargingProfile": {}}]
    (reply,) = harness.exchange(json.dumps(frame))
    assert (
        reply[0] == 4
        and reply[1] == "c1"
        and reply[2] in ("TypeConstraintViolation", "ProtocolError")
    )


def test_a_composite_schedule_request_for_a_century_is_rejected_not_computed(
    harness: Harness,
) -> None:
    if harness.version == "1.6":
        frame = [2, "d1", "GetCompositeSchedule", {"connectorId": 1, "duration": 3_153_600_000}]
    else:
        frame = [2, "d1", "GetCompositeSchedule", {"evseId": 1, "duration": 3_153_600_000}]
    harness.loop.call(harness.csms.send(json.dumps(frame)))
    reply = harness.loop.call(harness.csms.next_reply())
    assert reply[:2] == [3, "d1"] and reply[2]["status"] == "Rejected"


numbers = st.one_of(st.integers(-(2**40), 2**40), st.floats(allow_nan=False, allow_infinity=False))
stamps = st.one_of(st.just(NOW), st.text(max_size=25), st.datetimes().map(lambda d: d.isoformat()))
periods = st.lists(
    st.fixed_dictionaries(
        {
            "startPeriod": st.integers(-100, 100_000),
            "limit": st.integers(-10, 10**6).map(lambda v: v / 10),
        },
        optional={"numberPhases": st.integers(-1, 4)},
    ),
    min_size=0,
    max_size=5,
)
schedule = st.fixed_dictionaries(
    {"chargingRateUnit": st.sampled_from(["A", "W"]), "chargingSchedulePeriod": periods},
    optional={"duration": st.integers(-10, 10**9), "startSchedule": stamps},
)


def _profile(version: str) -> st.SearchStrategy[dict[str, Any]]:
    purposes = (
        ["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"]
        if version == "1.6"
        else [
            "ChargingStationMaxProfile",
            "TxDefaultProfile",
            "TxProfile",
            "ChargingStationExternalConstraints",
        ]
    )
    common = {
        "stackLevel": st.integers(-2, 12),
        "chargingProfilePurpose": st.sampled_from(purposes),
        "chargingProfileKind": st.sampled_from(["Absolute", "Recurring", "Relative"]),
    }
    optional = {
        "recurrencyKind": st.sampled_from(["Daily", "Weekly"]),
        "validFrom": stamps,
        "validTo": stamps,
    }
    if version == "1.6":
        return st.fixed_dictionaries(
            {"chargingProfileId": st.integers(-5, 5), **common, "chargingSchedule": schedule},
            optional={**optional, "transactionId": st.integers(-2, 2)},
        )
    return st.fixed_dictionaries(
        {
            "id": st.integers(-5, 5),
            **common,
            "chargingSchedule": st.lists(
                schedule.map(lambda s: {"id": 1, **s}), min_size=1, max_size=2
            ),
        },
        optional={**optional, "transactionId": st.text(max_size=10)},
    )


def near_valid(version: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    connector = st.integers(-2, 4)
    # The same request in both versions; only the name of the connector/EVSE field differs.
    composite_schedule = st.tuples(
        st.just("GetCompositeSchedule"),
        st.fixed_dictionaries(
            {
                "connectorId" if version == "1.6" else "evseId": connector,
                "duration": st.integers(-10, 10**7),
            },
            optional={"chargingRateUnit": st.sampled_from(["A", "W"])},
        ),
    )
    if version == "1.6":
        return st.one_of(
            st.tuples(
                st.just("SetChargingProfile"),
                st.fixed_dictionaries(
                    {"connectorId": connector, "csChargingProfiles": _profile(version)}
                ),
            ),
            composite_schedule,
            st.tuples(
                st.just("ClearChargingProfile"),
                st.fixed_dictionaries(
                    {},
                    optional={
                        "id": st.integers(-3, 3),
                        "connectorId": connector,
                        "stackLevel": st.integers(-1, 9),
                    },
                ),
            ),
            st.tuples(
                st.just("RemoteStartTransaction"),
                st.fixed_dictionaries(
                    {"idTag": st.text(max_size=20)},
                    optional={"connectorId": connector, "chargingProfile": _profile(version)},
                ),
            ),
            st.tuples(
                st.just("RemoteStopTransaction"),
                st.fixed_dictionaries({"transactionId": st.integers(-3, 3)}),
            ),
            st.tuples(
                st.just("ChangeAvailability"),
                st.fixed_dictionaries(
                    {
                        "connectorId": connector,
                        "type": st.sampled_from(["Operative", "Inoperative"]),
                    }
                ),
            ),
            st.tuples(
                st.just("TriggerMessage"),
                st.fixed_dictionaries(
                    {
                        "requestedMessage": st.sampled_from(
                            [
                                "Heartbeat",
                                "MeterValues",
                                "StatusNotification",
                                "FirmwareStatusNotification",
                            ]
                        )
                    },
                    optional={"connectorId": connector},
                ),
            ),
            st.tuples(
                st.just("ChangeConfiguration"),
                st.fixed_dictionaries(
                    {
                        "key": st.sampled_from(
                            [
                                "HeartbeatInterval",
                                "MeterValueSampleInterval",
                                "LocalAuthorizeOffline",
                                "Whatever",
                            ]
                        ),
                        "value": st.text(max_size=12),
                    }
                ),
            ),
        )
    component = st.fixed_dictionaries(
        {"name": st.sampled_from(["OCPPCommCtrlr", "SampledDataCtrlr", "AuthCtrlr", "Nope"])}
    )
    variable = st.fixed_dictionaries(
        {
            "name": st.sampled_from(
                ["HeartbeatInterval", "TxUpdatedInterval", "LocalAuthorizeOffline", "Nope"]
            )
        }
    )
    return st.one_of(
        st.tuples(
            st.just("SetChargingProfile"),
            st.fixed_dictionaries({"evseId": connector, "chargingProfile": _profile(version)}),
        ),
        composite_schedule,
        st.tuples(
            st.just("RequestStartTransaction"),
            st.fixed_dictionaries(
                {
                    "idToken": st.fixed_dictionaries(
                        {"idToken": st.text(max_size=36), "type": st.just("Central")}
                    ),
                    "remoteStartId": st.integers(-5, 5),
                },
                optional={"evseId": connector, "chargingProfile": _profile(version)},
            ),
        ),
        st.tuples(
            st.just("RequestStopTransaction"),
            st.fixed_dictionaries({"transactionId": st.text(max_size=36)}),
        ),
        st.tuples(
            st.just("ChangeAvailability"),
            st.fixed_dictionaries(
                {"operationalStatus": st.sampled_from(["Operative", "Inoperative"])},
                optional={"evse": st.fixed_dictionaries({"id": connector})},
            ),
        ),
        st.tuples(
            st.just("SetVariables"),
            st.fixed_dictionaries(
                {
                    "setVariableData": st.lists(
                        st.fixed_dictionaries(
                            {
                                "attributeValue": st.text(max_size=12),
                                "component": component,
                                "variable": variable,
                            }
                        ),
                        min_size=1,
                        max_size=3,
                    )
                }
            ),
        ),
        st.tuples(
            st.just("ClearChargingProfile"),
            st.fixed_dictionaries(
                {},
                optional={
                    "chargingProfileId": st.integers(-3, 3),
                    "chargingProfileCriteria": st.fixed_dictionaries(
                        {}, optional={"evseId": connector, "stackLevel": st.integers(-1, 9)}
                    ),
                },
            ),
        ),
    )


test_random_text_never_breaks_the_twin = random_text_test()
test_random_json_never_breaks_the_twin = random_json_test()


def _device_within_its_limits(harness: Harness) -> None:
    device = harness.device
    for connector in (1, 2):
        limit = device.limit_kw(connector)
        assert limit is None or limit >= 0.0
        assert 0.0 <= device.p_kw(connector) <= device.max_power_kw(connector)


test_near_valid_csms_requests_never_break_the_twin = near_valid_test(
    near_valid, "nv", then=_device_within_its_limits
)

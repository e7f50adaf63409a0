"""OCPP Core requests a CSMS may send the charge point twin, on the wire: GetBaseReport with its
NotifyReports (2.0.1), DataTransfer, UnlockConnector, ClearCache (1.6) and the Core keys of 1.6
GetConfiguration.

A raw CSMS (websockets on loopback, frames as JSON) answers the twin's own messages, sends the
requests under test and records every frame in arrival order; the twin ticks on a simulated clock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import websockets

from qubit_sim.errors import ProtocolError
from qubit_sim.protocols.csms import Csms
from qubit_sim.twins.charger_device import EvState, SimpleCharger
from qubit_sim.twins.ocpp_cp import OcppChargePointTwin
from qubit_sim.twins.ocpp_cp201 import REPORT_ITEMS_PER_MESSAGE

TIMEOUT_S = 20.0
REPLY_TIMEOUT_S = 5.0
NOW = "2025-01-01T00:00:00Z"

#: OCPP 1.6 §9.1: the Core configuration keys a charge point must report.
CORE_KEYS_16 = {
    "AuthorizeRemoteTxRequests",
    "ClockAlignedDataInterval",
    "ConnectionTimeOut",
    "ConnectorPhaseRotation",
    "GetConfigurationMaxKeys",
    "HeartbeatInterval",
    "LocalAuthorizeOffline",
    "LocalPreAuthorize",
    "MeterValuesAlignedData",
    "MeterValuesSampledData",
    "MeterValueSampleInterval",
    "NumberOfConnectors",
    "ResetRetries",
    "StopTransactionOnEVSideDisconnect",
    "StopTransactionOnInvalidId",
    "StopTxnAlignedData",
    "StopTxnSampledData",
    "SupportedFeatureProfiles",
    "TransactionMessageAttempts",
    "TransactionMessageRetryInterval",
    "UnlockConnectorOnEVSideDisconnect",
}


class RawCsms:
    """Answers the twin minimally and lets the test send any CALL; logs every frame received.

    Args:
        version: ``"1.6"`` or ``"2.0.1"``.
        after_boot: A CALL ``[action, payload]`` sent right after answering the boot.
    """

    def __init__(self, version: str, after_boot: tuple[str, dict[str, Any]] | None = None):
        self.version = version
        self.after_boot = after_boot
        self.conn: Any = None
        self.server: Any = None
        #: Every frame received from the twin, decoded, in arrival order.
        self.log: list[list[Any]] = []
        self.ids = itertools.count()
        self._replies: dict[str, asyncio.Future[list[Any]]] = {}
        self._tx_ids = itertools.count(1)

    async def start(self) -> str:
        self.server = await websockets.serve(
            self._handle,
            "127.0.0.1",
            0,
            subprotocols=[f"ocpp{self.version}"],  # type: ignore[list-item]
        )
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    def _answer(self, action: str) -> dict[str, Any]:
        answers: dict[str, dict[str, Any]] = {
            "BootNotification": {"currentTime": NOW, "interval": 3600, "status": "Accepted"},
            "Heartbeat": {"currentTime": NOW},
        }
        if self.version == "1.6":
            answers["Authorize"] = {"idTagInfo": {"status": "Accepted"}}
            answers["StartTransaction"] = {
                "transactionId": next(self._tx_ids),
                "idTagInfo": {"status": "Accepted"},
            }
        else:
            answers["Authorize"] = {"idTokenInfo": {"status": "Accepted"}}
        return answers.get(action, {})

    async def _handle(self, ws: Any) -> None:
        self.conn = ws
        async for raw in ws:
            frame = json.loads(raw)
            self.log.append(frame)
            if frame[0] != 2:
                future = self._replies.pop(frame[1], None)
                if future is not None:
                    future.set_result(frame)
                continue
            await ws.send(json.dumps([3, frame[1], self._answer(frame[2])]))
            if frame[2] == "BootNotification" and self.after_boot is not None:
                action, payload = self.after_boot
                await ws.send(json.dumps([2, "after-boot", action, payload]))

    async def request(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Send a CALL and return the twin's reply frame."""
        unique_id = f"req-{next(self.ids)}"
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._replies[unique_id] = future
        await self.conn.send(json.dumps([2, unique_id, action, payload]))
        return await asyncio.wait_for(future, REPLY_TIMEOUT_S)

    def calls(self, action: str) -> list[dict[str, Any]]:
        """Payloads of the CALLs ``action`` the twin sent, in order."""
        return [f[3] for f in self.log if f[0] == 2 and f[2] == action]


def run(
    version: str,
    scenario: Callable[[RawCsms, OcppChargePointTwin, SimpleCharger], Awaitable[None]],
    *,
    after_boot: tuple[str, dict[str, Any]] | None = None,
) -> None:
    async def main() -> None:
        csms = RawCsms(version, after_boot)
        url = await csms.start()
        device = SimpleCharger(n_connectors=2)
        twin = OcppChargePointTwin(device, "CP1", url, version=version, clock=lambda: 0.0)
        await twin.connect()
        try:
            await scenario(csms, twin, device)
            assert not twin.errors
        finally:
            await twin.close()
            await csms.stop()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


# -- 2.0.1 GetBaseReport -----------------------------------------------------------------------


def test_get_base_report_right_after_boot_is_answered_then_reported() -> None:
    request = ("GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"})

    async def scenario(csms: RawCsms, twin: OcppChargePointTwin, device: SimpleCharger) -> None:
        reply_at = next(i for i, f in enumerate(csms.log) if f[:2] == [3, "after-boot"])
        assert csms.log[reply_at][2] == {"status": "Accepted"}
        await twin.tick()
        reports = [
            (i, f[3]) for i, f in enumerate(csms.log) if f[0] == 2 and f[2] == "NotifyReport"
        ]
        assert reports and all(i > reply_at for i, _ in reports)  # the answer goes first
        payloads = [p for _, p in reports]
        assert [p["seqNo"] for p in payloads] == list(range(len(payloads)))
        assert [p.get("tbc", False) for p in payloads] == [True] * (len(payloads) - 1) + [False]
        assert {p["requestId"] for p in payloads} == {7}
        entries = [e for p in payloads for e in p["reportData"]]
        assert len(payloads) == -(-len(entries) // REPORT_ITEMS_PER_MESSAGE) > 1
        # Every configuration variable is reported with the value GetVariables reads.
        config = [e for e in entries if "evse" not in e["component"]]
        data = [{"component": e["component"], "variable": e["variable"]} for e in config]
        reply = await csms.request("GetVariables", {"getVariableData": data})
        read = {
            (r["component"]["name"], r["variable"]["name"]): r.get("attributeValue")
            for r in reply[2]["getVariableResult"]
        }
        for entry in config:
            key = (entry["component"]["name"], entry["variable"]["name"])
            assert read[key] == entry["variableAttribute"][0]["value"], key
        assert read["OCPPCommCtrlr", "HeartbeatInterval"] == "3600"  # set by the boot answer
        assert read["SmartChargingCtrlr", "RateUnit"] == "A,W"
        # One EVSE per connector, with its rating and availability.
        evse = {
            (e["component"]["evse"]["id"], e["component"]["name"], e["variable"]["name"]): e
            for e in entries
            if "evse" in e["component"]
        }
        assert {k[0] for k in evse} == {1, 2}
        power = evse[1, "EVSE", "Power"]
        assert power["variableCharacteristics"]["maxLimit"] == 22000.0
        assert power["variableAttribute"][0]["mutability"] == "ReadOnly"
        assert evse[2, "Connector", "AvailabilityState"]["variableAttribute"][0]["value"] == (
            "Available"
        )

    run("2.0.1", scenario, after_boot=request)


def test_base_reports_reach_the_stacks_csms() -> None:
    async def main() -> None:
        async with Csms(clock=lambda: 0.0) as csms:
            device = SimpleCharger(n_connectors=1)
            twin = OcppChargePointTwin(
                device, "CP1", csms.url, version="2.0.1", clock=lambda: 0.0, auto_start=False
            )
            await twin.connect()
            device.plug_in(1, EvState(capacity_kwh=50.0, soc=0.5))
            await twin.tick()
            reports = {}
            for base in ("FullInventory", "ConfigurationInventory", "SummaryInventory"):
                result = await csms.get_base_report("CP1", base)
                assert result.accepted, result
                await twin.tick()
                report = csms.state.charge_points["CP1"].reports[int(result.detail)]
                assert report.complete and report.seq_nos == list(range(len(report.seq_nos)))
                reports[base] = report
            full, config, summary = reports.values()
            assert full.value("OCPPCommCtrlr", "HeartbeatInterval") == "300"
            assert full.value("EVSE", "AvailabilityState", evse=1) == "Occupied"
            assert full.value("ChargingStation", "VendorName") == "QubitSim"
            # The configuration inventory lists what a CSMS may set, and only that.
            mutability = {a["mutability"] for e in config.entries for a in e["variable_attribute"]}
            assert mutability == {"ReadWrite"}
            assert "SampledDataCtrlr.TxUpdatedInterval" in config.names()
            assert config.names() < full.names()
            assert summary.names() == {
                "ChargingStation.AvailabilityState",
                "EVSE.AvailabilityState",
                "Connector.AvailabilityState",
            }
            assert summary.value("Connector", "AvailabilityState", evse=1, connector=1) == (
                "Occupied"
            )
            await twin.close()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


def test_a_16_charge_point_has_no_base_report() -> None:
    async def main() -> None:
        async with Csms(clock=lambda: 0.0) as csms:
            twin = OcppChargePointTwin(SimpleCharger(), "CP1", csms.url, clock=lambda: 0.0)
            await twin.connect()
            with pytest.raises(ProtocolError, match="no GetBaseReport"):
                await csms.get_base_report("CP1")
            await twin.close()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


def test_an_unknown_report_base_is_a_schema_violation_not_a_report() -> None:
    async def scenario(csms: RawCsms, twin: OcppChargePointTwin, device: SimpleCharger) -> None:
        reply = await csms.request("GetBaseReport", {"requestId": 1, "reportBase": "Everything"})
        assert reply[0] == 4 and reply[2] in ("FormatViolation", "PropertyConstraintViolation")
        await twin.tick()
        assert csms.calls("NotifyReport") == []

    run("2.0.1", scenario)


def test_the_device_model_addresses_evse_and_connector_variables() -> None:
    device = SimpleCharger(n_connectors=1)
    twin = OcppChargePointTwin(device, "CP1", "ws://127.0.0.1:9", version="2.0.1", clock=float)
    model = twin.device_model
    evse1 = {"name": "EVSE", "evse": {"id": 1}}
    assert model.get(evse1, "Power") == ("Accepted", "0.0")
    assert model.get({"name": "evse", "evse": {"id": 2}}, "Power") == ("UnknownComponent", None)
    assert model.get({"name": "EVSE"}, "Power") == ("UnknownComponent", None)
    assert model.get(evse1, "Nope") == ("UnknownVariable", None)
    connector = {"name": "Connector", "evse": {"id": 1, "connector_id": 1}}
    assert model.get(connector, "AvailabilityState") == ("Accepted", "Available")
    device.set_fault(1, True)
    assert model.get(connector, "AvailabilityState") == ("Accepted", "Faulted")
    assert model.get({"name": "ChargingStation"}, "AvailabilityState") == ("Accepted", "Faulted")
    assert model.set(evse1, "Power", "5") == "Rejected"  # read-only
    assert model.get({"name": "ChargingStation"}, "Model") == ("Accepted", "SimCharger")
    assert model.set({"name": "OCPPCommCtrlr"}, "HeartbeatInterval", "45") == "Accepted"
    assert twin.config["heartbeat_interval_s"] == 45
    assert model.report("Everything") is None


# -- DataTransfer, UnlockConnector, ClearCache ---------------------------------------------------


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_data_transfer_is_answered_unknown_vendor_id(version: str) -> None:
    async def scenario(csms: RawCsms, twin: OcppChargePointTwin, device: SimpleCharger) -> None:
        payload = {"vendorId": "com.example", "messageId": "Ping", "data": "x"}
        reply = await csms.request("DataTransfer", payload)
        assert reply[0] == 3 and reply[2]["status"] == "UnknownVendorId"

    run(version, scenario)


def test_unlock_connector_16_ends_the_transaction_first() -> None:
    async def scenario(csms: RawCsms, twin: OcppChargePointTwin, device: SimpleCharger) -> None:
        device.plug_in(1, EvState(capacity_kwh=50.0, soc=0.5))
        await twin.tick()
        assert device.in_transaction(1)
        reply = await csms.request("UnlockConnector", {"connectorId": 1})
        assert reply[2] == {"status": "Unlocked"}
        assert not device.in_transaction(1)
        await twin.tick()
        (stop,) = csms.calls("StopTransaction")
        assert stop["reason"] == "UnlockCommand"
        # Without a transaction it just unlocks; a connector that does not exist cannot.
        assert (await csms.request("UnlockConnector", {"connectorId": 2}))[2] == {
            "status": "Unlocked"
        }
        for connector in (0, 3):
            reply = await csms.request("UnlockConnector", {"connectorId": connector})
            assert reply[2] == {"status": "NotSupported"}

    run("1.6", scenario)


def test_unlock_connector_201_keeps_an_authorized_transaction() -> None:
    async def scenario(csms: RawCsms, twin: OcppChargePointTwin, device: SimpleCharger) -> None:
        device.plug_in(1, EvState(capacity_kwh=50.0, soc=0.5))
        await twin.tick()
        cases = [
            ({"evseId": 1, "connectorId": 1}, "OngoingAuthorizedTransaction"),
            ({"evseId": 2, "connectorId": 1}, "Unlocked"),
            ({"evseId": 3, "connectorId": 1}, "UnknownConnector"),
            ({"evseId": 2, "connectorId": 2}, "UnknownConnector"),
        ]
        for payload, status in cases:
            reply = await csms.request("UnlockConnector", payload)
            assert reply[2] == {"status": status}, payload
        assert device.in_transaction(1)
        await twin.tick()
        ended = [e for e in csms.calls("TransactionEvent") if e["eventType"] == "Ended"]
        assert ended == []

    run("2.0.1", scenario)


def test_clear_cache_16_is_accepted() -> None:
    async def scenario(csms: RawCsms, twin: OcppChargePointTwin, device: SimpleCharger) -> None:
        assert (await csms.request("ClearCache", {}))[2] == {"status": "Accepted"}

    run("1.6", scenario)


# -- 1.6 GetConfiguration ---------------------------------------------------------------------


def test_get_configuration_16_lists_every_core_key_truthfully() -> None:
    async def scenario(csms: RawCsms, twin: OcppChargePointTwin, device: SimpleCharger) -> None:
        reply = await csms.request("GetConfiguration", {})
        keys = {k["key"]: k for k in reply[2]["configurationKey"]}
        assert set(keys) >= CORE_KEYS_16
        assert int(keys["GetConfigurationMaxKeys"]["value"]) >= len(keys)
        assert keys["ConnectorPhaseRotation"]["value"] == "0.RST,1.RST,2.RST"
        assert keys["ClockAlignedDataInterval"]["value"] == "0"
        assert keys["StopTransactionOnInvalidId"]["value"] == "true"
        # The keys the twin does not act on are read-only: a change is rejected.
        for key in CORE_KEYS_16 - {
            "AuthorizeRemoteTxRequests",
            "ConnectionTimeOut",
            "HeartbeatInterval",
            "LocalAuthorizeOffline",
            "MeterValueSampleInterval",
            "MeterValuesSampledData",
        }:
            assert keys[key]["readonly"], key
            change = await csms.request("ChangeConfiguration", {"key": key, "value": "1"})
            assert change[2] == {"status": "Rejected"}, key
        # StopTxnSampledData says what a StopTransaction's transactionData carries.
        device.plug_in(1, EvState(capacity_kwh=50.0, soc=0.5))
        await twin.tick()
        device.advance(600.0)
        device.unplug(1)
        await twin.tick()
        (stop,) = csms.calls("StopTransaction")
        sent = {
            v.get("measurand", "Energy.Active.Import.Register")
            for mv in stop["transactionData"]
            for v in mv["sampledValue"]
        }
        assert sent == set(keys["StopTxnSampledData"]["value"].split(","))

    run("1.6", scenario)

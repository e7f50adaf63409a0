"""L4 device links over the wire: Qubit coordination commands as OCPP and Modbus requests.

In ``mode: wire`` the coordinator (:mod:`qubit_sim.scenario.coordination`) reaches the devices
through these links instead of the in-process ones. Each control call runs the real protocol
exchange on the run's asyncio loop and waits for it (lock-step), so the device's answer arrives
within the same simulated instant and the command's lifecycle is the one a ``fast`` run gives:

* **OCPP** (chargers, through the stack's CSMS): ``SetChargingProfile`` (power limit),
  Remote start/stop, ``ChangeAvailability``. ``Accepted`` completes the command; ``Rejected`` or a
  CALLERROR refuses it (a retry follows). A charge point that is not connected, or whose
  connection drops during the exchange, cannot be reached: a failed attempt.
* **Modbus** (batteries and PV, through :class:`~qubit_sim.protocols.modbus_link.ModbusLink`):
  the SunSpec write. The write response completes the command; a Modbus exception response
  refuses it.
* A device that **does not answer** (the OCPP response timeout, or a Modbus request that went
  unanswered through the client's own retries) leaves the command waiting for a reply that never
  comes: it times out on simulated time (Qubit ``command_timeout_seconds``) and is retried.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from qubit_sim.errors import ProtocolError
from qubit_sim.protocols.modbus_link import ModbusRefused
from qubit_sim.scenario.coordination import DeviceLinks, battery_asset_id, charger_asset_id
from qubit_sim.stack.coordinate import LinkError, LinkResult, Reply, Telemetry

if TYPE_CHECKING:  # pragma: no cover
    from qubit_sim.scenario.wire import WireSimulation

__all__ = ["ModbusL4Link", "OcppL4Link", "wire_device_links"]

_UNANSWERED = "did not answer"


class _WireL4Link:
    """Shared part: run one protocol exchange in lock-step and map its outcome."""

    def __init__(self, sim: WireSimulation, asset_id: str, index: int) -> None:
        self.sim = sim
        self.asset_id = asset_id
        self.index = index
        #: Requests that got no answer (their commands time out).
        self.unanswered = 0

    def _exchange(self, call: Callable[[], Coroutine[Any, Any, Any]]) -> LinkResult:
        try:
            answer = self.sim._call(call())
        except ModbusRefused as exc:
            return LinkResult.rejected(str(exc))
        except ProtocolError as exc:
            text = str(exc)
            if _UNANSWERED in text or "failed after" in text:
                self.unanswered += 1
                return LinkResult.pending(Reply())
            raise LinkError(text) from exc
        if answer is None or getattr(answer, "accepted", True):
            return LinkResult.ok()
        return LinkResult.rejected(f"{answer.status} {answer.detail}".rstrip())


class OcppL4Link(_WireL4Link):
    """L4 link to charger ``index`` through the stack's CSMS (connector 1)."""

    def _ocpp(self) -> Any:
        return self.sim.charger_links[self.index]

    def set_power_limit(self, kw: float) -> LinkResult:
        """``SetChargingProfile`` with the cap [kW] (sent in W)."""
        self.sim.traffic["ocpp_limits"] += 1
        return self._exchange(lambda: self._ocpp().set_power_limit(kw))

    def start(self) -> LinkResult:
        """Remote start of a transaction."""
        return self._exchange(lambda: self._ocpp().start())

    def stop(self) -> LinkResult:
        """Remote stop of the running transaction."""
        return self._exchange(lambda: self._ocpp().stop())

    def set_availability(self, available: bool) -> LinkResult:
        """``ChangeAvailability`` Operative/Inoperative."""
        return self._exchange(lambda: self._ocpp().set_availability(available))

    def read(self) -> Telemetry:
        """What the CSMS last received from the connector (meter values, status)."""
        sim = self.sim
        csms = sim.csms
        if csms is None:
            return Telemetry(self.asset_id, sim.engine.now_s, 0.0, "")
        reading = csms.read(sim.fleet.ids[self.index], 1)
        return Telemetry(
            asset_id=self.asset_id,
            time=sim.engine.now_s,
            p_kw=float(reading.p_kw),
            status=str(reading.status or ""),
            soc=reading.ev_soc,
            e_kwh=reading.e_register_kwh,
            connected=reading.transaction_id is not None,
            power_limit_kw=reading.limit_kw,
            available=reading.online,
        )


class ModbusL4Link(_WireL4Link):
    """L4 link to battery ``index`` through its :class:`ModbusLink` (SunSpec writes)."""

    def _modbus(self) -> Any:
        return self.sim.battery_links[self.index]

    def set_power_limit(self, kw: float) -> LinkResult:
        """Battery power setpoint [kW, + charge] as SunSpec 704 ``WSet``."""
        self.sim.traffic["modbus_setpoints"] += 1
        return self._exchange(lambda: self._modbus().set_power_limit(kw))

    def start(self) -> LinkResult:
        """Connect the battery (802 ``SetOp``)."""
        return self._exchange(lambda: self._modbus().start())

    def stop(self) -> LinkResult:
        """Disconnect the battery."""
        return self._exchange(lambda: self._modbus().stop())

    def set_availability(self, available: bool) -> LinkResult:
        """Connect or disconnect the battery."""
        return self._exchange(lambda: self._modbus().set_availability(available))

    def read(self) -> Telemetry:
        """Power [kW] and SOC read over Modbus now."""
        sim = self.sim
        reading = sim._call(self._modbus().read())
        return Telemetry(
            asset_id=self.asset_id,
            time=sim.engine.now_s,
            p_kw=float(reading.get("p_kw") or 0.0),
            status="enabled" if reading.get("enabled") else "",
            soc=reading.get("soc"),
            available=bool(reading.get("enabled")),
        )


def wire_device_links(sim: WireSimulation) -> DeviceLinks:
    """The coordinator's links of a wire run: OCPP for chargers, Modbus for batteries and PV.

    The protocol links are created when the run starts; these resolve them at call time.
    """

    def set_pv_cap(j: int, cap: float | None) -> None:
        sim.traffic["modbus_setpoints"] += 1
        sim._call(sim.pv_links[j].set_power_limit(cap))

    def lift_charger_cap(i: int) -> None:
        sim.traffic["ocpp_limits"] += 1
        result = sim._call(sim.charger_links[i].set_power_limit(None))
        if not result.accepted:
            raise ProtocolError(
                f"charge point {sim.fleet.ids[i]!r} refused to lift its power limit: "
                f"{result.status} {result.detail}".rstrip()
            )

    return DeviceLinks(
        chargers=[
            OcppL4Link(sim, charger_asset_id(str(c)), i) for i, c in enumerate(sim.fleet.ids)
        ],
        batteries=[
            ModbusL4Link(sim, battery_asset_id(str(b)), j)
            for j, b in enumerate(sim.site.batteries.ids)
        ],
        set_pv_cap=set_pv_cap,
        lift_charger_cap=lift_charger_cap,
    )

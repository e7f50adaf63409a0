"""OCPP charge point twin: a :class:`ChargerDevice` behind a real OCPP 1.6J / 2.0.1 websocket.

The twin is driven in lock-step: the engine advances the device's physics, then awaits
:meth:`OcppChargePointTwin.tick`, which sends every message due at that simulated instant
(status changes, transaction start/stop, periodic meter values, heartbeats, triggered messages)
and returns once each has been answered. Timers, back-off and timestamps all run on the
simulated clock passed in. Requests from the CSMS are answered as they arrive and act on the
device at once; the messages they cause go out on the next tick. In real time a task runs
:meth:`~OcppChargePointTwin.run_realtime`, which ticks periodically and as soon as a request
arrives.

Reliability: when the connection drops the twin reconnects with exponential back-off (in
simulated seconds) and keeps transaction messages (start, meter values, stop) in an ordered
queue that is delivered after the reconnect. A message whose answer was lost is sent again
unchanged; the CSMS treats repeated transaction messages idempotently.

Layers: :mod:`ocpp_connection` (websocket, boot, queue) -> :mod:`ocpp_transactions` (device
observation, transactions, limits) -> :mod:`ocpp_commands` (CSMS requests) -> this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np

from qubit_sim.protocols.ocpp_common import DEFAULT_EPOCH, check_version
from qubit_sim.twins.charger_device import ChargerDevice
from qubit_sim.twins.ocpp_commands import TwinCommands
from qubit_sim.twins.ocpp_config import TwinConfig
from qubit_sim.twins.ocpp_cp16 import V16Codec, V16Session
from qubit_sim.twins.ocpp_cp201 import V201Codec, V201Session
from qubit_sim.twins.ocpp_device_model import DeviceModel
from qubit_sim.twins.ocpp_tx import Transaction

__all__ = ["OcppChargePointTwin"]


class OcppChargePointTwin(TwinCommands):
    """An OCPP charge point wrapping a :class:`ChargerDevice`.

    Args:
        device: The charger.
        identity: Charge point identity (last path segment of the websocket URL).
        csms_url: Websocket URL of the CSMS without the identity, e.g. ``ws://127.0.0.1:9000``.
        version: ``"1.6"`` or ``"2.0.1"``.
        clock: Returns the current *simulated* time [s].
        start_utc: UTC instant of simulated second 0 (timestamps on the wire).
        meter_interval_s: Meter values interval during a transaction [s]; 0 disables them.
        heartbeat_s: Heartbeat interval until the CSMS sets one at boot [s].
        vendor: Vendor name in the BootNotification.
        model: Model name in the BootNotification.
        password: Basic-auth password (security profiles 1 and 2), or ``None``.
        ssl_context: TLS context for ``wss://`` URLs (profiles 2 and 3; the client certificate
            of profile 3 is loaded into it).
        id_tag: Token used for locally started transactions.
        auto_start: Start a transaction when an EV is plugged in (after Authorize); otherwise
            wait for a remote start.
        response_timeout_s: Wall-clock wait for an answer before the connection is considered
            broken [s].
        backoff_initial_s: First reconnect delay [s, simulated]; doubles per failed attempt.
        backoff_max_s: Cap of the reconnect delay [s, simulated].
        rng: When given, each back-off delay is scaled by a factor drawn from [0.5, 1).
    """

    def __init__(
        self,
        device: ChargerDevice,
        identity: str,
        csms_url: str,
        *,
        version: str = "1.6",
        clock: Callable[[], float],
        start_utc: datetime = DEFAULT_EPOCH,
        meter_interval_s: int = 60,
        heartbeat_s: int = 300,
        vendor: str = "QubitSim",
        model: str = "SimCharger",
        password: str | None = None,
        ssl_context: Any = None,
        id_tag: str = "QUBITSIM",
        auto_start: bool = True,
        response_timeout_s: float = 10.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        rng: np.random.Generator | None = None,
    ) -> None:
        check_version(version)
        codec = V16Codec(vendor, model) if version == "1.6" else V201Codec(vendor, model)
        super().__init__(
            device,
            start_utc=start_utc,
            id_tag=id_tag,
            auto_start=auto_start,
            identity=identity,
            csms_url=csms_url,
            version=version,
            clock=clock,
            codec=codec,
            config=TwinConfig(
                device.n_connectors,
                heartbeat_s=heartbeat_s,
                meter_interval_s=meter_interval_s,
                phases=[device.phases(c) for c in range(1, device.n_connectors + 1)],
            ),
            password=password,
            ssl_context=ssl_context,
            response_timeout_s=response_timeout_s,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            rng=rng,
        )
        #: The 2.0.1 device model (GetVariables, SetVariables, GetBaseReport).
        self.device_model = DeviceModel(
            self.config, device, vendor=vendor, model=model, availability=codec.status_value
        )

    def _make_session(self, ws: Any) -> Any:
        session_cls = V16Session if self.version == "1.6" else V201Session
        return session_cls(self, ws, self._response_timeout_s)

    @property
    def transactions(self) -> dict[int, Transaction]:
        """Running transaction per connector."""
        return dict(self._tx)

    def limit_kw(self, connector: int) -> float | None:
        """Limit last applied to the device on ``connector`` [kW] (``None``: unlimited)."""
        return self._applied.get(connector)

    def config_changed(self) -> None:
        """Re-arm timers after the CSMS changed the configuration."""
        now = self.now()
        if self.booted:
            self._next_heartbeat_s = min(
                self._next_heartbeat_s, now + self.config["heartbeat_interval_s"]
            )
        interval = self.config["meter_interval_s"]
        for tx in self._tx.values():
            tx.next_sample_s = now + interval if interval > 0 else math.inf
        self._wake.set()

    async def tick(self) -> None:
        """Send everything due at the current simulated time and wait for the answers."""
        async with self._lock:
            now = self.now()
            await self._keep_alive(now)
            self._sync_transactions(now)
            await self._start_transactions(now)
            self.apply_limits(now)
            self._sync_status(now)
            self._sample_meters(now)
            self._run_triggers(now)
            await self._flush()
            pending = self._pending_reset
            if pending is not None and not (pending[1] and self._tx):
                await self._reset(now)

    async def run_realtime(self, period_s: float = 1.0) -> None:
        """Tick every ``period_s`` wall seconds, and at once after each CSMS request."""
        while True:
            await self.tick()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=period_s)

    async def _reset(self, now: float) -> None:
        assert self._pending_reset is not None
        reason, _ = self._pending_reset
        self._pending_reset = None
        for c in list(self._tx):
            self.end_transaction(c, reason, now)
        await self._flush()
        await self._drop_connection()
        self._booted = False
        self._boot_reason = "RemoteReset"
        await self._try_connect(now)

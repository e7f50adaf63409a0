"""``mode: wire`` — the same site simulation with every device link over real loopback sockets.

Each charger is an OCPP charge point twin (websocket client, 1.6J or 2.0.1 as its scenario entry
says) of the stack's own CSMS; each battery and PV plant is a SunSpec Modbus TCP server the stack
reaches through a :class:`~qubit_sim.protocols.modbus_link.ModbusLink`. Everything listens on
127.0.0.1 with ephemeral ports.

Lock-step on simulated time. Per step ``k`` (time ``t``), after the EV arrivals and departures
at ``t``:

1. every twin ticks at ``t`` (status notifications, transaction start/stop, meter values,
   heartbeats, revert timers) and each message is answered before anything else happens, so the
   CSMS has processed the state at ``t``;
2. every control period, the controller's setpoints go out — only the ones whose wire value
   changed — as charging profiles through the CSMS and SunSpec writes, and each acknowledgement
   is awaited;
3. the physics step runs on the limits the devices hold, exactly as in ``fast`` mode.

A controller that coordinates through Qubit L4 (the stack controllers) has its setpoints sent as
L4 commands over the same protocols (:mod:`qubit_sim.scenario.wire_links`): a command's
acknowledgement is the device's protocol answer, and retries and timeouts appear in the run's
events as in ``fast`` mode.

A departing EV's twin ticks at its departure instant, so the transaction stops before another EV
can plug into the same charger at that instant. After the last step the twins tick once more at
the end of the horizon. Twins and servers only ever see the engine's clock; timeouts are the only
wall-clock waits. The asyncio loop runs in a helper thread, so a run also works from code that
already runs an event loop (a notebook).

``fast`` and ``wire`` give identical results: both hand the devices the same rounded numbers
(:mod:`qubit_sim.twins.quantize`), and the physics reads only what the devices hold.

Faults (:mod:`qubit_sim.scenario.faults`) act on the sockets at step starts, before the twins
tick: a ``link_drop`` closes the charge point's websocket and the CSMS refuses its reconnection
attempts until the window ends; setpoints for a charger whose link is down are not delivered.
Latency and message loss act on the twins' outgoing queues, a Modbus timeout silences a SunSpec
server, and commands pass the same filter as in ``fast`` mode (withheld, lost, delayed).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import math
import secrets
import ssl
import tempfile
import threading
from collections.abc import Callable, Collection, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

from qubit_sim.control.base import Setpoints
from qubit_sim.errors import ConfigIssue, ProtocolError, ScenarioError
from qubit_sim.protocols.csms import Csms, OcppLink
from qubit_sim.protocols.modbus_link import ModbusLink
from qubit_sim.protocols.ocpp_common import inline_validation
from qubit_sim.protocols.ocpp_security import client_ssl_context, make_pki, server_ssl_context
from qubit_sim.scenario.build import SiteModel
from qubit_sim.scenario.faults import (
    _command_logger,
    apply_fault_transitions,
    configure_endpoints,
    plan_faults,
)
from qubit_sim.scenario.simulation import Simulation
from qubit_sim.twins.fleet_devices import BankBattery, PlantPv
from qubit_sim.twins.links import SetpointChanges
from qubit_sim.twins.ocpp_cp import OcppChargePointTwin
from qubit_sim.twins.ocpp_meter_view import StepMeteredCharger
from qubit_sim.twins.sunspec_server import SunSpecServer

__all__ = ["OcppSecurity", "WireSimulation", "ocpp_security"]

_T = TypeVar("_T")
_CLOSE_TIMEOUT_S = 5.0


class _InlineExecutor(ThreadPoolExecutor):
    """Runs submitted work at once in the caller's thread.

    The OCPP library validates every message in the loop's default executor. In a lock-step run
    the loop waits for that result anyway; worker threads would only add GIL hand-offs, which
    cost far more than the validation itself.
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed to the awaiting coroutine, as a worker would
            future.set_exception(exc)
        return future


class _LoopThread:
    """An asyncio loop running in a daemon thread; the engine hands it coroutines and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.set_default_executor(_InlineExecutor(max_workers=1))
        self._thread = threading.Thread(target=self._serve, name="qubit-sim-wire", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.call(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=_CLOSE_TIMEOUT_S)
        if not self._thread.is_alive():
            self.loop.close()


class _FaultableCsms(Csms):
    """The stack's CSMS, able to refuse chosen identities (a link held down by a fault)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Identities whose connection attempts are refused with HTTP 503.
        self.blocked: set[str] = set()

    def _process_request(self, connection: Any, request: Any) -> Any:
        identity = request.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        if identity in self.blocked:
            return self._refuse(connection, HTTPStatus.SERVICE_UNAVAILABLE, "link down (fault)")
        return super()._process_request(connection, request)


@dataclass(frozen=True)
class OcppSecurity:
    """The resolved ``ocpp:`` section: what the CSMS demands and what each twin presents.

    Attributes:
        profile: OCPP security profile (0: none).
        passwords: Basic-auth password per twin identity (profiles 1 and 2).
        server_ssl: The CSMS's TLS context (profiles 2 and 3).
        client_ssl: Per twin identity, its TLS context (trusted CA; profile 3: its certificate).
        pki_dir: Folder of the certificates made for the run (``certificates: auto``).
    """

    profile: int = 0
    passwords: dict[str, str] = field(default_factory=dict)
    server_ssl: ssl.SSLContext | None = None
    client_ssl: dict[str, ssl.SSLContext] = field(default_factory=dict)
    pki_dir: Path | None = None


def ocpp_security(
    site: SiteModel, results_dir: Path | None, default_profile: int = 0
) -> OcppSecurity:
    """Resolve the scenario's ``ocpp:`` security for the site's charger twins.

    Args:
        site: The built site.
        results_dir: Where ``certificates: auto`` writes its throw-away PKI (``pki/``); a
            temporary folder when ``None``.
        default_profile: Profile when the scenario leaves ``security_profile`` unset.

    Raises:
        ScenarioError: a password or certificate missing for a twin, or given for an unknown id.
    """
    spec = site.scenario.spec.ocpp
    profile = default_profile if spec.security_profile is None else spec.security_profile
    ids = list(site.fleet.ids)
    issues: list[ConfigIssue] = []

    def check_ids(given: Collection[str], path: str, what: str) -> None:
        for identity in sorted(set(given) - set(ids)):
            close = difflib.get_close_matches(identity, ids, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            issues.append(ConfigIssue(f"{path}.{identity}", f"no charger twin {identity!r}{hint}"))
        missing = [i for i in ids if i not in given]
        if missing:
            issues.append(ConfigIssue(path, f"no {what} for the charger twins {missing}"))

    passwords: dict[str, str] = {}
    if profile in (1, 2):
        if spec.passwords == "auto":
            passwords = {cp_id: secrets.token_urlsafe(18) for cp_id in ids}
        else:
            check_ids(spec.passwords, "ocpp.passwords", "password")
            passwords = dict(spec.passwords)
    if profile < 2:
        if issues:
            raise ScenarioError(issues, site.scenario.name)
        return OcppSecurity(profile, passwords)
    pki_dir = None
    files = spec.certificates
    if files == "auto":
        pki_dir = (results_dir or Path(tempfile.mkdtemp(prefix="qubit-sim-pki-"))) / "pki"
        pki = make_pki(pki_dir, ids if profile == 3 else ())
        ca, cert, key, clients = pki.ca_cert, pki.server_cert, pki.server_key, pki.clients
    else:
        resolve = site.scenario.resolve
        ca, cert, key = (resolve(p) for p in (files.ca_cert, files.server_cert, files.server_key))
        clients = {i: (resolve(c.cert), resolve(c.key)) for i, c in files.clients.items()}
        if profile == 3:
            check_ids(clients, "ocpp.certificates.clients", "client certificate")
        for path in (ca, cert, key, *(p for pair in clients.values() for p in pair)):
            if not path.is_file():
                issues.append(ConfigIssue("ocpp.certificates", f"no such file: {path}"))
    if issues:
        raise ScenarioError(issues, site.scenario.name)
    server = server_ssl_context(cert, key, ca if profile == 3 else None)
    client = {
        i: client_ssl_context(ca, *(clients[i] if profile == 3 else (None, None))) for i in ids
    }
    return OcppSecurity(profile, passwords, server, client, pki_dir)


class WireSimulation(Simulation):
    """A :class:`Simulation` whose device links are OCPP websockets and Modbus TCP on loopback.

    Args:
        site: The built site.
        timeseries_path / events_path / progress: As for :class:`Simulation`.
        host: Interface the CSMS and the SunSpec servers listen on.
        meter_interval_s: Meter-value interval of the charge points during transactions
            [s, simulated]; 0 disables periodic meter values.
        heartbeat_s: Heartbeat interval the CSMS gives the charge points [s, simulated].
        measurands: Measurands of the periodic meter values (OCPP ``MeterValuesSampledData``);
            per-phase current and voltage are left out by default, the CSMS does not need them
            and they triple the size of every meter value.
        response_timeout_s: Wall-clock wait for any answer [s].

    Attributes:
        csms: The stack's CSMS (its ``state`` keeps every charge point and transaction).
        twins: One OCPP charge point twin per charger, in fleet order.
        charger_links: The stack's :class:`OcppLink` to each charger.
        servers: SunSpec servers, batteries first, then PV plants.
        battery_links / pv_links: The stack's :class:`ModbusLink` to each battery / PV plant.
        traffic: Setpoint requests sent: ``ocpp_limits``, ``modbus_setpoints``.
        endpoints: ``(host, port)`` of every listening socket (the CSMS first).
        faults: The run's :class:`~qubit_sim.scenario.faults.FaultPlan`.
    """

    # Its coordinator (built below) sends L4 commands over OCPP and Modbus.
    in_process_coordination = False

    def __init__(
        self,
        site: SiteModel,
        timeseries_path: Path | None = None,
        events_path: Path | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        host: str = "127.0.0.1",
        meter_interval_s: int = 60,
        heartbeat_s: int = 900,
        measurands: str = "Energy.Active.Import.Register,Power.Active.Import,SoC",
        response_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(site, timeseries_path, events_path, progress)
        self.host = host
        self.meter_interval_s = int(meter_interval_s)
        self.heartbeat_s = int(heartbeat_s)
        self.measurands = measurands
        self.response_timeout_s = float(response_timeout_s)
        self.csms: Csms | None = None
        self.twins: list[OcppChargePointTwin] = []
        self.charger_links: list[OcppLink] = []
        self.servers: list[SunSpecServer] = []
        self.battery_links: list[ModbusLink] = []
        self.pv_links: list[ModbusLink] = []
        self.traffic = {"ocpp_limits": 0, "modbus_setpoints": 0}
        self.endpoints: list[tuple[str, int]] = []
        self._loop: _LoopThread | None = None
        self._started = False
        self.faults = plan_faults(site)
        known = timeseries_path or events_path
        self._results_dir = None if known is None else known.parent
        #: The resolved ``ocpp:`` security (set when the sockets open).
        self.security = OcppSecurity()
        if getattr(self.controller, "uses_coordination", False):
            # Qubit L4 over the wire: commands, acknowledgements and retries as in fast mode.
            from qubit_sim.scenario.coordination import Coordinator, site_id_for
            from qubit_sim.scenario.wire_links import wire_device_links

            self.coordinator = Coordinator(
                self.router,
                self.engine,
                site.clock.to_utc(0),
                site.clock.duration_s,
                self._write_record,
                site_id=site_id_for(site.scenario.name),
                links=wire_device_links(self),
            )

    # ------------------------------------------------------------------- run
    def run(self) -> None:
        """Run to the end over the sockets; they are closed whatever happens."""
        # The loop waits for each validation anyway: inline, it costs no thread hand-offs.
        with inline_validation():
            self._run_over_sockets()

    def _run_over_sockets(self) -> None:
        try:
            super().run()
            if self._started:
                end_s = self.engine.now_s
                apply_fault_transitions(self, self.faults, end_s, log=False)
                self._call(self._inject(end_s))  # links come back: queued messages go out
                for twin in self.twins:
                    twin.release_delayed()  # the horizon: what latency still holds goes out
            self._call(self._tick())  # the state at the end of the horizon reaches the CSMS
        finally:
            self.close()
            self._write_transactions()

    def _write_transactions(self) -> None:
        """``<results>/csms_transactions.parquet``: what the CSMS received, for settlement."""
        if self.csms is None or self._results_dir is None:
            return
        from qubit_sim.stack.settle.transactions import write_transactions

        records = list(self.csms.state.transactions.values())
        write_transactions(self._results_dir, records, self.site.clock.start)

    def close(self) -> None:
        """Close every connection and server and stop the loop (safe to call twice)."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        with contextlib.suppress(Exception):
            loop.call(self._close_all())
        loop.close()

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if self._loop is None:
            self._loop = _LoopThread()
        return self._loop.call(coro)

    def _now(self) -> int:
        return self.engine.now_s

    # ----------------------------------------------------------------- start
    async def _start(self) -> None:
        self._started = True
        security = self.security = ocpp_security(self.site, self._results_dir)
        csms = _FaultableCsms(
            self.host,
            0,
            clock=self._now,
            start_utc=self.site.clock.start,
            heartbeat_interval_s=self.heartbeat_s,
            response_timeout_s=self.response_timeout_s,
            credentials=security.passwords or None,
            ssl_context=security.server_ssl,
        )
        self.csms = csms
        await csms.start()
        self.endpoints.append((self.host, csms.port))
        devices = self.devices
        for i, charger in enumerate(devices.chargers):
            cp_id = self.fleet.ids[i]
            twin = OcppChargePointTwin(
                StepMeteredCharger(devices, charger.i, self.engine, self.site.clock.n_steps),
                cp_id,
                csms.url,
                version=devices.charger_versions[i],
                clock=self._now,
                start_utc=self.site.clock.start,
                meter_interval_s=self.meter_interval_s,
                heartbeat_s=self.heartbeat_s,
                response_timeout_s=self.response_timeout_s,
                password=security.passwords.get(cp_id),
                ssl_context=security.client_ssl.get(cp_id),
            )
            twin.config.put("measurands", self.measurands)
            self.twins.append(twin)
            self.charger_links.append(csms.link(cp_id))
        await asyncio.gather(*(twin.connect() for twin in self.twins))
        refused = [twin.identity for twin in self.twins if not twin.booted]
        if refused:
            raise ProtocolError(f"the CSMS did not accept the boot of charge points {refused}")
        kinds: list[tuple[str, int, BankBattery | PlantPv]] = [
            ("battery", j, b) for j, b in enumerate(devices.batteries)
        ]
        kinds += [("pv", j, p) for j, p in enumerate(devices.pv)]
        for kind, _, device in kinds:
            self.servers.append(
                SunSpecServer(device, kind, host=self.host, port=0, clock=self._now)
            )
        await asyncio.gather(*(server.start() for server in self.servers))
        self.endpoints += [(self.host, server.port) for server in self.servers]
        await self._connect_modbus(self.host, kinds)

    async def _connect_modbus(
        self, host: str, kinds: list[tuple[str, int, BankBattery | PlantPv]]
    ) -> None:
        """Connect one :class:`ModbusLink` to each started SunSpec server (in ``kinds`` order:
        batteries, then PV plants) as the stack's link to that device."""
        ids = {"battery": self.site.batteries.ids, "pv": self.site.pv_ids}
        for (kind, j, _), server in zip(kinds, self.servers, strict=True):
            link = ModbusLink(
                host,
                server.port,
                server.unit_id,
                kind,
                timeout_s=self.response_timeout_s,
                name=f"{kind} {ids[kind][j]} at {host}:{server.port}",
            )
            (self.battery_links if kind == "battery" else self.pv_links).append(link)
        await asyncio.gather(*(link.connect() for link in self.battery_links + self.pv_links))

    async def _close_all(self) -> None:
        async def quietly(coro: Coroutine[Any, Any, Any]) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(coro, _CLOSE_TIMEOUT_S)

        await asyncio.gather(
            *(quietly(link.close()) for link in self.battery_links + self.pv_links)
        )
        await asyncio.gather(*(quietly(twin.close()) for twin in self.twins))
        await asyncio.gather(*(quietly(server.stop()) for server in self.servers))
        if self.csms is not None:
            await quietly(self.csms.stop())

    # ------------------------------------------------------------------ step
    def _step(self, k: int) -> None:
        if not self._started:
            self._call(self._start())
        if self.faults:
            apply_fault_transitions(self, self.faults, k * self.dt)
            self._call(self._inject(k * self.dt))
        self._call(self._tick())
        if self.faults:
            delayed = self.faults.due(k * self.dt)  # commands held back by latency arrive
            if delayed is not None:
                self._call(self._send(delayed))
                self._curtailing = self.devices.curtailing()
        super()._step(k)
        self.devices.record_step(k, self._curtailing)

    async def _inject(self, t_s: int) -> None:
        """Act on the sockets for the fault windows that end or start at ``t_s``."""
        csms = self.csms
        assert isinstance(csms, _FaultableCsms)
        for window in self.faults.ending(t_s):
            if window.kind == "link_drop":
                csms.blocked.discard(window.device_id)
        configure_endpoints(
            self.faults, t_s, self.twins, self.servers, len(self.battery_links), self.site.rng
        )
        dropped = [w for w in self.faults.starting(t_s) if w.kind == "link_drop"]
        if not dropped:
            return
        csms.blocked.update(w.device_id for w in dropped)
        await asyncio.gather(*(self.twins[w.index].close() for w in dropped))
        # Lock-step: the CSMS must have seen every drop before the twins tick again.
        await csms.wait_until(
            lambda: not any(csms.is_connected(w.device_id) for w in dropped),
            self.response_timeout_s,
            "the CSMS to see the dropped charge points go offline",
        )

    async def _tick(self) -> None:
        devices = self.devices
        devices.voltage_pu = self._site_v if math.isfinite(self._site_v) else 1.0
        devices.refresh()
        await asyncio.gather(*(twin.tick() for twin in self.twins))
        for server in self.servers:
            server.tick()
        self._curtailing = devices.curtailing()

    def _depart(self, charger: int, s: int) -> None:
        leaving = self.fleet.session[charger] == s
        super()._depart(charger, s)
        if leaving and self._started:
            # The transaction must end now, before another EV may plug in at this instant.
            self._call(self.twins[charger].tick())

    def _apply_setpoints(self, setpoints: Setpoints) -> Setpoints:
        changes = self.router.changes(
            setpoints.charger_kw, setpoints.battery_kw, setpoints.pv_limit_kw
        )
        if changes is not None and self.faults:
            csms = self.csms
            assert csms is not None
            down = self.faults.links_down(self.engine.now_s)
            # A twin still backing off after its window also cannot be reached.
            down |= [not csms.is_connected(cp_id) for cp_id in self.fleet.ids]
            changes = self.faults.filter_commands(
                changes, self.engine.now_s, self.router, down, _command_logger(self, self.site)
            )
        if self.coordinator is not None:
            self.coordinator.apply(changes)
        elif changes is not None:
            self._call(self._send(changes))
        return self._held

    async def _send(self, changes: SetpointChanges) -> None:
        jobs: list[Coroutine[Any, Any, None]] = [
            self._send_charger(i, limit) for i, limit in changes.chargers
        ]
        jobs += [self.battery_links[j].set_power_limit(p_kw) for j, p_kw in changes.batteries]
        jobs += [self.pv_links[j].set_power_limit(cap) for j, cap in changes.pv]
        await asyncio.gather(*jobs)
        self.traffic["ocpp_limits"] += len(changes.chargers)
        self.traffic["modbus_setpoints"] += len(changes.batteries) + len(changes.pv)

    async def _send_charger(self, i: int, limit_kw: float | None) -> None:
        result = await self.charger_links[i].set_power_limit(limit_kw)
        if not result.accepted:
            raise ProtocolError(
                f"charge point {self.fleet.ids[i]!r} refused the power limit {limit_kw} kW: "
                f"{result.status} {result.detail}".rstrip()
            )

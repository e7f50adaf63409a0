"""``mode: realtime`` — the wire simulation paced by the wall clock, open to outside software.

Everything of ``mode: wire`` stays: chargers are OCPP charge point twins, batteries and PV plants
SunSpec Modbus TCP servers, and twins' timers run on simulated time. What changes:

* **Pacing.** An asyncio task advances the engine to ``factor × elapsed wall time`` (to the
  simulated second) and sleeps until the next event is due. simpy's own
  ``RealtimeEnvironment`` would block the event loop that serves the sockets, so a plain
  environment is advanced in a worker thread instead; while the engine runs, the event loop is
  parked, so outside requests never see a step half-applied. They are answered between engine
  runs (at least every ``twin_tick_s`` wall seconds, and at once while the engine is idle).
* **Listening sockets.** The CSMS listens on ``host:csms_port`` and the SunSpec servers on
  ``modbus_base_port + index`` (batteries first, then PV plants; base port 0 picks free ports).
  Fixed ports are tried when the simulation is built, so a port already taken is a
  :class:`ListenError` naming it and the setting that changes it, before anything runs.
  The CSMS admits the charger twins and the charge points on the YAML allow-list
  (``realtime.charge_points``: identity + password, HTTP basic auth, security profile 1).
* **External CSMS.** With ``csms_url`` the twins connect there instead. The stack then has no
  path to the chargers, so a run with an external CSMS is ``uncontrolled``.
* **Settlement.** As in ``wire``, a run whose chargers the stack's CSMS served writes
  ``csms_transactions.parquet`` (allow-listed charge points' transactions included), and the
  invoices come from those records; with an external CSMS they come from the chargers' registers.
* **Lag.** At the start of each step the delay behind its wall-clock due time is measured [s].
  ``warn`` logs when it exceeds one step, ``strict`` stops the run then, a number stops it
  above that many seconds. Maximum and mean go into the manifest and the KPIs.
* **Stopping.** Ctrl-C (``KeyboardInterrupt``) or SIGTERM (systemd, docker, CI time-outs) ends
  the pacing after the step under way; the results folder is written and marked incomplete, with
  ``stopped_by`` ``user (Ctrl-C)`` or ``SIGTERM``.

The physics is the one of ``fast`` and ``wire``: same scenario and seed, same time series.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from qubit_sim.core.results import RunResult
from qubit_sim.errors import (
    ConfigIssue,
    ProtocolError,
    ScenarioError,
    SimulationError,
)
from qubit_sim.protocols.ocpp_common import inline_validation
from qubit_sim.scenario.build import SiteModel
from qubit_sim.scenario.wire import WireSimulation, _FaultableCsms, ocpp_security
from qubit_sim.twins.fleet_devices import BankBattery, PlantPv
from qubit_sim.twins.ocpp_cp import OcppChargePointTwin
from qubit_sim.twins.ocpp_meter_view import StepMeteredCharger
from qubit_sim.twins.sunspec_server import SunSpecServer

__all__ = [
    "Endpoint",
    "LagPolicy",
    "LagStats",
    "ListenError",
    "RealtimeSimulation",
    "ServeOptions",
    "Terminated",
    "check_listen",
    "serve",
    "sigterm_as_interrupt",
]

LOGGER = logging.getLogger("qubit_sim.realtime")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's ``KeyboardInterrupt`` would be, to take the same path."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[list[int]]:
    """While open, SIGTERM raises :class:`Terminated` in the main thread (once: a second one
    finds the stop under way). Yields a list that receives the signal's number.

    Elsewhere than in the main thread no handler can be installed; the list stays empty.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handle(signum: int, _frame: object) -> None:
        if received:
            return
        received.append(signum)
        LOGGER.warning("SIGTERM: stopping after the step under way (devices to their safe state)")
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


_T = TypeVar("_T")
_WARN_EVERY_S = 10.0


class ListenError(ProtocolError):
    """A server socket cannot listen on its address: the port is taken, needs privileges, or the
    host is not one of this machine's.

    Attributes:
        host / port: The address.
        setting: The option or YAML key that changes it.
    """

    def __init__(self, host: str, port: int, reason: str, setting: str) -> None:
        self.host, self.port, self.setting = host, port, setting
        super().__init__(f"cannot listen on {host}:{port}: {reason}; choose another with {setting}")


_BIND_REASONS = {
    errno.EADDRINUSE: "the address is already in use (another program listens there)",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
    errno.EADDRNOTAVAIL: "no interface of this machine has that address",
}


def check_listen(host: str, port: int, port_setting: str, host_setting: str) -> None:
    """Fail early when a server could not listen on ``host:port`` now (port 0 always can).

    Binds and closes a probe socket per address ``host`` resolves to, with the options asyncio's
    servers use (``SO_REUSEADDR`` on POSIX, IPv6-only sockets), so a port in ``TIME_WAIT`` passes
    as it would for the real server.

    Args:
        host / port: The address.
        port_setting / host_setting: What changes the port / the host, for the message
            (e.g. ``"--csms-port (realtime.csms_port; 0 picks a free port)"``).

    Raises:
        ListenError: naming the address, the reason and the setting to change.
    """
    if port == 0:
        return
    try:
        addresses = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ListenError(host, port, f"unknown host ({exc.strerror})", host_setting) from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            if os.name == "posix":
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                reason = _BIND_REASONS.get(exc.errno or 0, exc.strerror or str(exc))
                setting = host_setting if exc.errno == errno.EADDRNOTAVAIL else port_setting
                raise ListenError(host, port, reason, setting) from None


@dataclass(frozen=True)
class LagPolicy:
    """What to do when the simulation falls behind the wall clock.

    Attributes:
        mode: ``"warn"`` (log), ``"strict"`` (stop when behind more than one step) or
            ``"threshold"`` (stop when behind more than ``threshold_s``).
        threshold_s: The limit of ``"threshold"`` [s, wall clock].
    """

    mode: Literal["warn", "strict", "threshold"] = "warn"
    threshold_s: float | None = None

    @classmethod
    def parse(cls, value: str | float | LagPolicy) -> LagPolicy:
        """``"warn"``, ``"strict"`` or a number of seconds (``"2.5"``, ``2.5``).

        Raises:
            ScenarioError: for anything else, naming the value.
        """
        if isinstance(value, LagPolicy):
            return value
        text = str(value).strip().lower()
        if text in ("warn", "strict"):
            return cls(text)  # type: ignore[arg-type]
        try:
            threshold = float(text.removesuffix("s"))
        except ValueError:
            threshold = math.nan
        if not math.isfinite(threshold) or threshold <= 0:
            raise ScenarioError(
                [
                    ConfigIssue(
                        "realtime.lag",
                        f"lag policy {value!r} is not 'warn', 'strict' or a positive number of "
                        "seconds (e.g. 2.5)",
                    )
                ]
            )
        return cls("threshold", threshold)

    def __str__(self) -> str:
        return f"{self.threshold_s:g} s" if self.mode == "threshold" else self.mode


@dataclass
class LagStats:
    """Delay of each step's start behind its wall-clock due time [s]."""

    n_steps: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    steps_behind: int = 0  # steps that started more than one step late

    def add(self, lag_s: float, behind: bool) -> None:
        """Count one step."""
        self.n_steps += 1
        self.total_s += lag_s
        self.max_s = max(self.max_s, lag_s)
        self.steps_behind += int(behind)

    @property
    def mean_s(self) -> float:
        """Mean lag [s]."""
        return self.total_s / self.n_steps if self.n_steps else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Figures for the manifest: ``lag_max_s``, ``lag_mean_s``, ``steps``, ``steps_behind``."""
        return {
            "lag_max_s": round(self.max_s, 6),
            "lag_mean_s": round(self.mean_s, 6),
            "steps": self.n_steps,
            "steps_behind": self.steps_behind,
        }


@dataclass(frozen=True)
class Endpoint:
    """One socket of a served site.

    Attributes:
        kind: ``"csms"`` (OCPP websocket server), ``"battery"`` or ``"pv"`` (Modbus TCP, SunSpec)
            or ``"charger"`` (an OCPP client twin; ``url`` is where it connects).
        asset_id: Device id from the scenario (the CSMS: ``"csms"``).
        url: ``ws://host:port`` or ``modbus://host:port``.
        detail: OCPP version and identity, or Modbus unit id and SunSpec base address.
    """

    kind: str
    asset_id: str
    url: str
    detail: str = ""


class _Park:
    """Holds the event loop still while the engine thread runs (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._resume: threading.Event | None = None

    def hold(self) -> None:
        if self._resume is not None:
            return
        parked, resume = threading.Event(), threading.Event()

        def wait() -> None:
            parked.set()
            resume.wait()

        self._loop.call_soon_threadsafe(wait)
        parked.wait()
        self._resume = resume

    def release(self) -> bool:
        resume, self._resume = self._resume, None
        if resume is None:
            return False
        resume.set()
        return True


class RealtimeSimulation(WireSimulation):
    """A :class:`WireSimulation` paced by the wall clock, with sockets others may connect to.

    Args:
        site / timeseries_path / events_path / progress: As for :class:`WireSimulation`.
        factor: Simulated seconds per wall-clock second.
        host: Interface the CSMS and the SunSpec servers listen on.
        csms_port: Port of the stack's CSMS (0: a free one).
        modbus_base_port: Port of the first SunSpec server; the others follow (0: free ports).
        csms_url: External CSMS the charger twins connect to; the controller must then be
            ``uncontrolled`` (the stack cannot reach the chargers).
        allowed: Charge points that are not twins and may join the stack's CSMS
            ``{identity: password}``.
        lag: Lag policy (:meth:`LagPolicy.parse`).
        twin_tick_s: Longest wall-clock wait between twin ticks while the engine idles [s].
        on_ready: Called once every socket is up, before the clock starts.
        **wire_options: ``meter_interval_s``, ``heartbeat_s``, ``measurands``,
            ``response_timeout_s`` of :class:`WireSimulation`.

    Raises:
        ListenError: when a fixed port is taken (or the host is not this machine's); the
            message names the setting in :attr:`listen_settings`.

    Attributes:
        lag_stats: The measured :class:`LagStats`.
        stopped_early: True when the run was stopped (Ctrl-C, SIGTERM) before the end of the horizon.
        stop_signals: Signal numbers received while paced (SIGTERM), for :attr:`stopped_by`.
        endpoint_table: Every socket as an :class:`Endpoint`, once started.
    """

    #: What a user changes to move each listening socket (``host``, ``csms_port``,
    #: ``modbus_base_port``), named in a :class:`ListenError`.
    listen_settings: Mapping[str, str] = {
        "host": "--host (realtime.host in the scenario)",
        "csms_port": "--csms-port (realtime.csms_port in the scenario; 0 picks a free port)",
        "modbus_base_port": (
            "--modbus-base-port (realtime.modbus_base_port in the scenario; 0 picks free ports)"
        ),
    }

    def __init__(
        self,
        site: SiteModel,
        timeseries_path: Path | None = None,
        events_path: Path | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        factor: float = 1.0,
        host: str = "127.0.0.1",
        csms_port: int = 9000,
        modbus_base_port: int = 5020,
        csms_url: str | None = None,
        allowed: Mapping[str, str] | None = None,
        lag: str | float | LagPolicy = "warn",
        twin_tick_s: float = 1.0,
        on_ready: Callable[[list[Endpoint]], None] | None = None,
        **wire_options: Any,
    ) -> None:
        if not (math.isfinite(factor) and factor > 0):
            raise ScenarioError(
                [ConfigIssue("realtime.factor", f"factor {factor!r} must be a positive number")]
            )
        if csms_url is not None and site.controller.name != "uncontrolled":
            raise ScenarioError(
                [
                    ConfigIssue(
                        "controller",
                        f"controller {site.controller.name!r} cannot reach chargers that connect "
                        f"to the external CSMS {csms_url}; run it with the 'uncontrolled' one",
                    )
                ]
            )
        self._check_ports(site, host, int(csms_port), int(modbus_base_port))
        super().__init__(site, timeseries_path, events_path, progress, host=host, **wire_options)
        self.factor = float(factor)
        self.csms_port = int(csms_port)
        self.modbus_base_port = int(modbus_base_port)
        self.csms_url = csms_url
        self.allowed = dict(allowed or {})
        clash = sorted(set(self.allowed) & set(self.fleet.ids))
        if clash:
            raise ScenarioError(
                [
                    ConfigIssue(
                        "realtime.charge_points",
                        f"identities {clash} are charger twins of this site; an allow-listed "
                        "charge point needs an identity of its own",
                    )
                ]
            )
        self.lag_policy = LagPolicy.parse(lag)
        self.twin_tick_s = float(twin_tick_s)
        self.on_ready = on_ready
        self.lag_stats = LagStats()
        self.stopped_early = False
        #: Signal numbers received while paced (SIGTERM); empty after Ctrl-C or a normal end.
        self.stop_signals: list[int] = []
        self.endpoint_table: list[Endpoint] = []
        self._wall0 = 0.0
        self._last_warning = -math.inf
        self._park: _Park | None = None
        self._stop: asyncio.Event | None = None
        self._twin_tasks: list[asyncio.Task[None]] = []
        self._engine_thread = ThreadPoolExecutor(1, thread_name_prefix="qubit-sim-engine")
        # Simulation.run drives engine.run(); in real time the pacer advances the engine instead.
        self.engine.run = self._run_paced  # type: ignore[method-assign]

    def _check_ports(self, site: SiteModel, host: str, csms_port: int, base_port: int) -> None:
        # Before anything is opened: a taken port is then a set-up error, reported before the
        # run starts, with the results folder marked incomplete by the runner.
        settings = self.listen_settings
        check_listen(host, csms_port, settings["csms_port"], settings["host"])
        if base_port:
            n_servers = site.batteries.n + len(site.pv_ids)
            for port in range(base_port, base_port + n_servers):
                check_listen(host, port, settings["modbus_base_port"], settings["host"])

    # ------------------------------------------------------------------ pacing
    def _run_paced(self, n_steps: int | None = None) -> None:
        """Pace the run, with SIGTERM taken as Ctrl-C (:attr:`stop_signals` gets its number)."""
        with sigterm_as_interrupt() as received, inline_validation():
            self.stop_signals = received
            self._serve_paced()
        if received and self.stopped_early:
            self.stopped_by = signal.Signals(received[0]).name

    def _serve_paced(self) -> None:
        self._call(self._start())
        loop = self._loop
        assert loop is not None
        self._park = _Park(loop.loop)
        if self.on_ready is not None:
            self.on_ready(self.endpoint_table)
        pacing = asyncio.run_coroutine_threadsafe(self._pace(), loop.loop)
        try:
            self._wait(pacing)
        except KeyboardInterrupt:
            self.stopped_early = True
            self.stopped_by = "user (Ctrl-C)"
            LOGGER.warning("stopping at t=%d s (Ctrl-C)", self.engine.now_s)
            stop = self._stop
            if stop is not None:
                loop.loop.call_soon_threadsafe(stop.set)
            self._wait(pacing)  # ends after the step under way
        finally:
            self._engine_thread.shutdown(wait=True)
        if not self.engine.finished:
            self.stopped_early = True

    def report(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The measured lag as KPIs, and a ``realtime`` manifest section."""
        lag = self.lag_stats.to_dict()
        kpis = {"realtime_lag_max_s": lag["lag_max_s"], "realtime_lag_mean_s": lag["lag_mean_s"]}
        section = {
            "factor": self.factor,
            "lag_policy": str(self.lag_policy),
            **lag,
            "external_csms": self.csms_url,
            "allowed_charge_points": sorted(self.allowed),
            "endpoints": [vars(endpoint) for endpoint in self.endpoint_table],
        }
        return kpis, {"realtime": section}

    def _write_transactions(self) -> None:
        """``csms_transactions.parquet`` when the stack's CSMS served the run.

        It holds every transaction that CSMS received: the twins' and those of allow-listed
        charge points. With an external CSMS the twins' transactions went there, so none is
        written and settlement reads the chargers' own registers.
        """
        if self.csms_url is None:
            super()._write_transactions()

    @staticmethod
    def _wait(future: Future[None]) -> None:
        # Short waits keep the main thread responsive to Ctrl-C.
        while True:
            try:
                future.result(timeout=0.2)
                return
            except TimeoutError:
                continue

    async def _pace(self) -> None:
        self._stop = stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        engine = self.engine
        factor = self.factor
        end_s = self.site.clock.duration_s
        hold_s = max(1, int(self.twin_tick_s * factor))
        self._start_twin_tasks()
        self._wall0 = wall0 = time.perf_counter()
        # The clock runs on to the end of the horizon after the last step starts, so the closing
        # tick reports the state at the end (the last step's energy reaches the CSMS), as in wire.
        while engine.now_s < end_s and not stop.is_set():
            # Everything at the simulated second under way has run; the clock reads the next.
            target_s = min(end_s, int((time.perf_counter() - wall0) * factor) + 1)
            if target_s > engine.now_s:
                await loop.run_in_executor(self._engine_thread, self._advance, target_s)
                continue
            due_s = min(engine.env.peek(), engine.now_s + hold_s)
            delay = wall0 + due_s / factor - time.perf_counter()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    def _advance(self, t_s: int) -> None:
        park = self._park
        assert park is not None
        park.hold()
        try:
            self.engine.run_until(t_s)
        finally:
            park.release()

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        park = self._park
        if park is None or not park.release():
            return super()._call(coro)
        try:
            return super()._call(coro)
        finally:
            park.hold()

    def _step(self, k: int) -> None:
        due = self._wall0 + k * self.dt / self.factor
        lag_s = max(0.0, time.perf_counter() - due)
        one_step_s = self.dt / self.factor
        behind = lag_s > one_step_s
        self.lag_stats.add(lag_s, behind)
        policy = self.lag_policy
        if policy.mode == "strict" and behind:
            raise SimulationError(
                f"real time fell {lag_s:.3f} s behind at step {k}, more than one step "
                f"({one_step_s:.3f} s at factor {self.factor:g}); lower --factor or use --lag warn",
                k * self.dt,
            )
        if policy.mode == "threshold" and lag_s > (policy.threshold_s or 0.0):
            raise SimulationError(
                f"real time fell {lag_s:.3f} s behind at step {k}, more than the "
                f"{policy.threshold_s:g} s allowed; lower --factor or raise --lag",
                k * self.dt,
            )
        if behind and time.perf_counter() - self._last_warning > _WARN_EVERY_S:
            self._last_warning = time.perf_counter()
            LOGGER.warning(
                "behind the wall clock by %.3f s at step %d (one step is %.3f s at factor %g)",
                lag_s,
                k,
                one_step_s,
                self.factor,
            )
        super()._step(k)

    # ------------------------------------------------------------------ sockets
    def _start_twin_tasks(self) -> None:
        # Twins answer outside requests and run their timers between engine steps too.
        for twin in self.twins:
            self._twin_tasks.append(asyncio.create_task(twin.run_realtime(self.twin_tick_s)))

    async def _close_all(self) -> None:
        for task in self._twin_tasks:
            task.cancel()
        await asyncio.gather(*self._twin_tasks, return_exceptions=True)
        self._twin_tasks.clear()
        await super()._close_all()

    def close(self) -> None:
        """Close every socket and stop the loop (safe to call twice)."""
        park, self._park = self._park, None
        if park is not None:
            park.release()
        super().close()
        self._engine_thread.shutdown(wait=False)

    def _modbus_port(self, index: int) -> int:
        return self.modbus_base_port + index if self.modbus_base_port else 0

    async def _start(self) -> None:
        if self._started:
            return
        self._started = True
        host = self.host
        # Profile 1 unless the scenario's ``ocpp:`` section says otherwise.
        security = self.security = ocpp_security(self.site, self._results_dir, 1)
        passwords = security.passwords
        csms = _FaultableCsms(
            host,
            self.csms_port,
            clock=self._now,
            start_utc=self.site.clock.start,
            heartbeat_interval_s=self.heartbeat_s,
            response_timeout_s=self.response_timeout_s,
            credentials={**passwords, **self.allowed} if security.profile in (1, 2) else None,
            ssl_context=security.server_ssl,
        )
        self.csms = csms
        try:
            await csms.start()
        except OSError as exc:
            # Taken between the check at construction and now.
            reason = _BIND_REASONS.get(exc.errno or 0, str(exc))
            setting = self.listen_settings["csms_port"]
            raise ListenError(host, self.csms_port, reason, setting) from None
        self.endpoints.append((host, csms.port))
        table = self.endpoint_table
        if self.csms_url is None:
            allowed = ", ".join(sorted(self.allowed)) or "twins only"
        else:  # the twins connect to the external CSMS; only listed charge points come here
            allowed = ", ".join(sorted(self.allowed)) or "nobody (twins use --csms-url)"
        table.append(Endpoint("csms", "csms", csms.url, f"OCPP 1.6J/2.0.1; admits {allowed}"))
        devices = self.devices
        url = self.csms_url or csms.url
        for i, charger in enumerate(devices.chargers):
            cp_id = self.fleet.ids[i]
            twin = OcppChargePointTwin(
                StepMeteredCharger(devices, charger.i, self.engine, self.site.clock.n_steps),
                cp_id,
                url,
                version=devices.charger_versions[i],
                clock=self._now,
                start_utc=self.site.clock.start,
                meter_interval_s=self.meter_interval_s,
                heartbeat_s=self.heartbeat_s,
                response_timeout_s=self.response_timeout_s,
                password=None if self.csms_url else passwords.get(cp_id),
                ssl_context=None if self.csms_url else security.client_ssl.get(cp_id),
            )
            twin.config.put("measurands", self.measurands)
            self.twins.append(twin)
            self.charger_links.append(csms.link(cp_id))
            version = devices.charger_versions[i]
            table.append(Endpoint("charger", cp_id, f"{url}/{cp_id}", f"OCPP {version} client"))
        await self._connect_twins()
        kinds: list[tuple[str, int, BankBattery | PlantPv]] = [
            ("battery", j, b) for j, b in enumerate(devices.batteries)
        ]
        kinds += [("pv", j, p) for j, p in enumerate(devices.pv)]
        for index, (kind, _, device) in enumerate(kinds):
            server = SunSpecServer(
                device, kind, host=host, port=self._modbus_port(index), clock=self._now
            )
            self.servers.append(server)
        await asyncio.gather(*(server.start() for server in self.servers))
        self.endpoints += [(host, server.port) for server in self.servers]
        ids = {"battery": self.site.batteries.ids, "pv": self.site.pv_ids}
        for (kind, j, _), server in zip(kinds, self.servers, strict=True):
            asset_id = ids[kind][j]
            detail = f"Modbus TCP unit {server.unit_id}, SunSpec at {server.map.base}"
            table.append(Endpoint(kind, asset_id, f"modbus://{host}:{server.port}", detail))
        await self._connect_modbus(host, kinds)

    async def _connect_twins(self) -> None:
        if self.csms_url is None:
            await asyncio.gather(*(twin.connect() for twin in self.twins))
            refused = [twin.identity for twin in self.twins if not twin.booted]
            if refused:
                raise ProtocolError(f"the CSMS did not accept the boot of charge points {refused}")
            return
        # Someone else's CSMS may be down or slow to accept: the twins keep retrying on their
        # own back-off instead of failing the run.
        results = await asyncio.gather(
            *(twin.connect() for twin in self.twins), return_exceptions=True
        )
        for twin, result in zip(self.twins, results, strict=True):
            if isinstance(result, BaseException) or not twin.booted:
                LOGGER.warning(
                    "charge point %s not booted at %s yet (%s); it keeps retrying",
                    twin.identity,
                    self.csms_url,
                    result or "boot pending",
                )


@dataclass(frozen=True)
class ServeOptions:
    """Settings of a served run; ``None`` fields take the scenario's ``realtime`` section.

    Attributes:
        factor: Simulated seconds per wall-clock second.
        host: Interface to listen on.
        csms_port: Port of the stack's CSMS (0: a free one).
        modbus_base_port: Port of the first SunSpec server (0: free ports).
        csms_url: External CSMS for the charger twins (the run is then ``uncontrolled``).
        lag: ``"warn"``, ``"strict"`` or a threshold [s].
    """

    factor: float | None = None
    host: str | None = None
    csms_port: int | None = None
    modbus_base_port: int | None = None
    csms_url: str | None = None
    lag: str | float | None = None


def serve(
    scenario: str | Path | Any,
    options: ServeOptions | None = None,
    *,
    seed: int | None = None,
    out: str | Path | None = None,
    until_s: int | None = None,
    plots: bool = True,
    settle: bool = True,
    key_dir: str | Path | None = None,
    on_ready: Callable[[list[Endpoint]], None] | None = None,
    notify: Callable[[str], None] | None = None,
    twin_tick_s: float = 1.0,
) -> RunResult:
    """Serve a scenario in real time and write its results folder, as ``qubit-sim run`` does.

    Args:
        scenario: A scenario YAML path or a loaded scenario.
        options: Command-line overrides of the scenario's ``realtime`` section.
        seed / out / until_s / plots / settle / key_dir: As for :func:`qubit_sim.run`.
        on_ready: Called with the endpoint table once every socket listens.
        notify: Called with notices for the user (e.g. the switch to ``uncontrolled``).
        twin_tick_s: Longest wall-clock wait between twin ticks [s].

    Returns:
        The :class:`~qubit_sim.core.results.RunResult`. A run stopped by Ctrl-C returns with the
        manifest marked ``incomplete``; the manifest's ``realtime`` section and the KPIs
        ``realtime_lag_max_s`` / ``realtime_lag_mean_s`` hold the measured lag.

    Raises:
        SimulationError: when the run fails (a strict lag policy included), after the results
            up to the failure are written and marked incomplete.
    """
    # The results folder is written exactly as by ``qubit-sim run``.
    from qubit_sim.control.registry import make_controller
    from qubit_sim.scenario import runner
    from qubit_sim.scenario.loader import LoadedScenario, load_scenario

    loaded = scenario if isinstance(scenario, LoadedScenario) else load_scenario(scenario)
    spec = loaded.spec.realtime
    opts = options or ServeOptions()

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    csms_url = pick(opts.csms_url, spec.csms_url)
    settings = {
        "factor": float(pick(opts.factor, spec.factor)),
        "host": pick(opts.host, spec.host),
        "csms_port": int(pick(opts.csms_port, spec.csms_port)),
        "modbus_base_port": int(pick(opts.modbus_base_port, spec.modbus_base_port)),
        "csms_url": csms_url,
        "lag": LagPolicy.parse(pick(opts.lag, spec.lag)),
    }
    notices: list[str] = []
    controller = None
    controller_name = loaded.spec.controller.name
    if csms_url is not None:
        controller = make_controller("uncontrolled", {})
        if controller_name != "uncontrolled":
            notices.append(
                f"chargers connect to the external CSMS {csms_url}, which the stack cannot reach: "
                f"running 'uncontrolled' instead of {controller_name!r} for the whole site (the "
                "battery and PV then follow only what Modbus clients write)"
            )
        controller_name = "uncontrolled"
    for notice in notices:
        # Said once: to the caller when it listens (the CLI prints notes), else to the log.
        if notify is not None:
            notify(notice)
        else:
            LOGGER.warning("%s", notice)

    allowed = {cp.identity: cp.password for cp in spec.charge_points}
    return runner.run_loaded(
        loaded,
        seed=seed,
        out=out,
        until_s=until_s,
        controller=controller,
        plots=plots,
        settle=settle,
        key_dir=key_dir,
        mode="realtime",
        notices=notices,
        simulation_factory=partial(
            RealtimeSimulation,
            factor=settings["factor"],
            host=settings["host"],
            csms_port=settings["csms_port"],
            modbus_base_port=settings["modbus_base_port"],
            csms_url=csms_url,
            allowed=allowed,
            lag=settings["lag"],
            twin_tick_s=twin_tick_s,
            on_ready=on_ready,
        ),
    )

"""``mode: hil`` — the real-time simulation with some twins swapped for physical devices.

:class:`HilSimulation` is a :class:`~qubit_sim.scenario.realtime.RealtimeSimulation` (wall clock x
factor, lag policy, the stack's CSMS listening) that, once its sockets are up:

1. connects to every bench device, checks its identity (SunSpec model 1 / register-map strings /
   OCPP BootNotification) and takes a first reading; a mismatch stops the run before the clock
   starts;
2. puts a :class:`~qubit_sim.hil.bridge.DeviceBridge` (envelope + expiring writes) in place of
   the replaced twin's link — the stack writes through the same link slot, so it cannot tell —
   or, in shadow mode, a :class:`~qubit_sim.hil.bridge.TeeLink` feeding twin and device alike;
3. takes each device over: writes its safe state and waits (``takeover_timeout_s``) until a fresh
   reading — a triggered OCPP meter value, a Modbus read-back — lies within its envelope, so the
   run never measures what the device did on its own; one that does not comply stops the run,
   left in its safe state;
4. on every step reads the devices; in replace mode the measured power (and a battery's SOC)
   overwrite the twin's physics after it ran (:meth:`_after_physics`), so the site meter, the
   power flow and the recorded time series use the device (a zero-order hold over the step). The
   energy balance accounts for the substitution;
5. runs a background task that re-reads the devices and renews every setpoint's expiry, and a
   :class:`~qubit_sim.hil.watchdog.Watchdog` fed at every step.

Whatever ends the run — its end, an error, a lag beyond the bench's threshold, Ctrl-C, SIGTERM
(systemd, docker and CI time-outs stop a process with it; it takes Ctrl-C's path and
``stopped_by`` names it) — every device is put in its safe state before the sockets close. The
watchdog does the same from its own thread when a step is overdue (a hung controller) — Modbus
devices over fresh connections, charge points through the CSMS, whose event loop it unparks for
that; the run then stops at its next step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qubit_sim.errors import ConfigIssue, ProtocolError, SimulationError
from qubit_sim.hil.bench import Bench, BenchError, DeviceSpec
from qubit_sim.hil.bridge import CommandRecord, DeviceBridge, TeeLink
from qubit_sim.hil.devices import DeviceReading, OcppCharger, make_device
from qubit_sim.hil.envelope import Envelope
from qubit_sim.hil.shadow import ShadowRecorder, ShadowSample
from qubit_sim.hil.watchdog import Watchdog
from qubit_sim.scenario.build import SiteModel
from qubit_sim.scenario.realtime import Endpoint, RealtimeSimulation

__all__ = ["HilSimulation", "IdentityCheck"]

LOGGER = logging.getLogger("qubit_sim.hil")
_SAFE_TIMEOUT_S = 5.0
_TAKEOVER_POLL_S = 0.1


class IdentityCheck:
    """What a device said it is, against what the bench expects.

    Attributes:
        device_id: Bench device id.
        expected / found: Identity fields.
        first_p_kw: First measured power [kW].
    """

    def __init__(
        self, device_id: str, expected: dict[str, str], found: dict[str, str], first_p_kw: float
    ) -> None:
        self.device_id = device_id
        self.expected = dict(expected)
        self.found = dict(found)
        self.first_p_kw = first_p_kw

    @property
    def mismatches(self) -> list[str]:
        """``key: expected 'a', found 'b'`` for every field that differs."""
        return [
            f"{key}: expected {value!r}, found {self.found.get(key)!r}"
            for key, value in self.expected.items()
            if self.found.get(key) != value
        ]

    def to_dict(self) -> dict[str, Any]:
        """For the manifest."""
        return {
            "expected": self.expected,
            "found": self.found,
            "ok": not self.mismatches,
            "first_p_kw": self.first_p_kw,
        }


def _expiry_wall_s(spec: DeviceSpec) -> float:
    if spec.ocpp is not None:
        return spec.ocpp.profile_duration_s / spec.ocpp.clock_factor
    return float(spec.revert_s)


class HilSimulation(RealtimeSimulation):
    """A real-time simulation with physical devices in place of chosen twins.

    Args:
        site / timeseries_path / events_path / progress: As for :class:`RealtimeSimulation`.
        bench: The loaded bench.
        dry_run: Connect, identify and read; judge commands but never write.
        on_ready: Called with the simulation once devices are identified, before the clock
            starts (prints the bench report).
        twin_tick_s: Longest wall wait between twin ticks [s].

    Attributes:
        stopped_by: ``"user (Ctrl-C)"`` or ``"SIGTERM"`` when a stop ended the run early.
        bridges: One bridge per bench device, in bench order.
        identities: One :class:`IdentityCheck` per device.
        watchdog: The :class:`Watchdog`.
        shadows: Shadow recorders by device id (shadow-mode devices only).
        takeovers: By device id, the reading that showed it in its safe state before the clock
            started (``p_kw`` [kW]) and how long that took (``wait_s`` [s]).
    """

    listen_settings = {
        "host": "csms_host in the bench file",
        "csms_port": "csms_port in the bench file (0 picks a free port)",
        "modbus_base_port": "nothing (a bench's SunSpec servers take free ports)",
    }

    def __init__(
        self,
        site: SiteModel,
        timeseries_path: Path | None = None,
        events_path: Path | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        bench: Bench,
        dry_run: bool = False,
        on_ready: Callable[[HilSimulation], None] | None = None,
        twin_tick_s: float = 1.0,
    ) -> None:
        self.bench = bench
        self._check_assets(site)
        allowed = {d.ocpp.identity: d.ocpp.password for d in bench.devices if d.ocpp is not None}
        super().__init__(
            site,
            timeseries_path,
            events_path,
            progress,
            factor=bench.factor,
            host=bench.csms_host,
            csms_port=bench.csms_port,
            modbus_base_port=0,
            allowed=allowed,
            lag=bench.lag_threshold_s,
            twin_tick_s=twin_tick_s,
            on_ready=lambda _endpoints: on_ready(self) if on_ready is not None else None,
        )
        self.dry_run = dry_run
        self.bridges: list[DeviceBridge] = []
        self.identities: list[IdentityCheck] = []
        self.shadows: dict[str, ShadowRecorder] = {}
        self.takeovers: dict[str, dict[str, float]] = {}
        self.watchdog = Watchdog(bench.watchdog_s, self._on_watchdog)
        self._charger_index = {cid: i for i, cid in enumerate(self.fleet.ids)}
        self._battery_index = {bid: j for j, bid in enumerate(self.bank.ids)}
        self._pv_index = {pid: j for j, pid in enumerate(site.pv_ids)}
        self._pv_held: list[tuple[int, float]] = []
        self._twin_links: list[tuple[list[Any], int, Any]] = []
        self._pv_substituted_kwh = 0.0
        self._replaced: list[tuple[str, int, DeviceBridge]] = []
        self._shadowed: list[tuple[str, int, DeviceBridge]] = []
        self._substituted_kwh = 0.0
        self._io_task: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[Any] | None = None
        self._first_readings: dict[str, DeviceReading] = {}

    def _check_assets(self, site: SiteModel) -> None:
        known = {
            "charger": set(site.fleet.ids),
            "battery": set(site.batteries.ids),
            "pv": set(site.pv_ids),
        }
        issues = []
        for index, device in enumerate(self.bench.devices):
            if device.replaces not in known[device.kind]:
                choices = ", ".join(sorted(known[device.kind])) or "none"
                issues.append(
                    ConfigIssue(
                        f"devices[{index}].replaces",
                        f"{device.kind} {device.replaces!r} is not in the scenario "
                        f"(its {device.kind}s: {choices})",
                    )
                )
        if issues:
            raise BenchError(issues, self.bench.name)

    # ------------------------------------------------------------- measured power in the physics
    def _after_physics(self, k: int) -> None:
        """Replace-mode devices: their latest reading overwrites the twin's power (and a battery's
        SOC) for step ``k``, before the meter, the time series and the power flow see it."""
        if not self._replaced:
            return
        self._pv_after_physics(k)
        hours = self.dt / 3600.0
        fleet, bank = self.fleet, self.bank
        chargers = [(i, b.reading) for kind, i, b in self._replaced if kind == "charger"]
        batteries = [(j, b.reading) for kind, j, b in self._replaced if kind == "battery"]
        if chargers:
            p_kw = fleet.p_grid_kw.copy()
            for i, reading in chargers:
                if reading is not None:
                    self._substituted_kwh += (reading.p_kw - p_kw[i]) * hours
                    p_kw[i] = reading.p_kw
            fleet.p_grid_kw = p_kw
            fleet.p_grid_total_kw = float(p_kw.sum())
        if batteries:
            p_kw, soc = bank.p_kw.copy(), bank.soc.copy()
            for j, reading in batteries:
                if reading is None:
                    continue
                self._substituted_kwh += (reading.p_kw - p_kw[j]) * hours
                p_kw[j] = reading.p_kw
                if reading.soc is not None:
                    soc[j] = reading.soc
            stored_kwh = bank.stored_kwh()
            bank.p_kw, bank.soc = p_kw, soc
            bank.p_total_kw = float(p_kw.sum())
            # A SOC taken from the device is no energy through the meter: the balance must not
            # count the jump.
            self._substituted_kwh -= bank.stored_kwh() - stored_kwh

    def _pv_after_physics(self, k: int) -> None:
        """A measured PV inverter stands in for the plant's available power at step ``k``; the
        stack's cap is lifted for that step, as the device already obeys it (restored after the
        step). The site meter and the PV energy then both count the measured power."""
        plants = [(j, b.reading) for kind, j, b in self._replaced if kind == "pv"]
        if not plants:
            return
        available = self.site.pv_available_kw
        limits = self.setpoints.pv_limit_kw
        hours = self.dt / 3600.0
        for j, reading in plants:
            if reading is None:
                continue
            measured_kw = max(-reading.p_kw, 0.0)  # PV injects: p_kw <= 0
            cap_kw = float(limits[j])
            twin_kw = float(available[k, j])
            if cap_kw == cap_kw:  # NaN: no cap
                twin_kw = min(twin_kw, max(cap_kw, 0.0))
            self._pv_substituted_kwh += (twin_kw - measured_kw) * hours
            self._pv_available_total[k] += measured_kw - available[k, j]
            available[k, j] = measured_kw
            self._pv_held.append((j, float(limits[j])))
            limits[j] = np.nan

    def energy_balance(self) -> dict[str, float]:
        """As for a simulation, with the measured-minus-twin energy of replaced devices added."""
        balance = super().energy_balance()
        balance["devices_kwh"] += self._substituted_kwh
        balance["error_kwh"] = balance["meter_kwh"] - balance["devices_kwh"]
        balance["hil_substituted_kwh"] = self._substituted_kwh
        balance["hil_pv_substituted_kwh"] = self._pv_substituted_kwh
        return balance

    # ----------------------------------------------------------------------------- start-up
    async def _start(self) -> None:
        if self._started:
            return
        self._starting = asyncio.current_task()
        await super()._start()
        assert self.csms is not None
        found_devices = []
        for spec in self.bench.devices:
            device = make_device(spec, self.csms, spec.ocpp.clock_factor if spec.ocpp else 1.0)
            found_devices.append(device)
            await device.connect()
            if isinstance(device, OcppCharger):
                await device.wait_booted(self.bench.identify_timeout_s)
            found = await device.identify()
            reading = await device.read()
            self.identities.append(IdentityCheck(spec.id, spec.identity, found, reading.p_kw))
            self._first_readings[spec.id] = reading
        wrong = [
            f"{check.device_id}: {'; '.join(check.mismatches)}"
            for check in self.identities
            if check.mismatches
        ]
        if wrong:
            # Not one write, not even a safe state, to a device that is not the expected one.
            for device in found_devices:
                with contextlib.suppress(Exception):
                    await device.close()
            raise ProtocolError("devices are not what the bench expects: " + " | ".join(wrong))
        for spec, device in zip(self.bench.devices, found_devices, strict=True):
            envelope = Envelope(spec.id, spec.limits, spec.kind, initial_kw=spec.safe_kw)
            bridge = DeviceBridge(
                device,
                envelope,
                refresh_s=max(0.1, _expiry_wall_s(spec) / 3.0),
                dry_run=self.dry_run,
            )
            bridge.reading = self._first_readings[spec.id]
            self.bridges.append(bridge)
            self.endpoint_table.append(Endpoint("hil", spec.id, device.name, spec.mode))
            self._attach(spec, bridge)
        if not self.dry_run:
            # A failure raises; closing the simulation then writes every safe state again.
            await asyncio.gather(*(self._take_over(b) for b in self.bridges))
        self.watchdog.start()

    async def _take_over(self, bridge: DeviceBridge) -> None:
        """Safe state, then wait until a fresh reading lies within the envelope: the device's
        meter lags its commands, so without this the first steps may still measure what the
        device did on its own before the bench took it over.

        Raises:
            ProtocolError: after ``takeover_timeout_s``, naming the device and its reading.
        """
        spec, device = bridge.spec, bridge.device
        low, high = -spec.limits.max_discharge_kw, spec.limits.max_charge_kw
        margin = self.bench.takeover_tolerance_kw
        timeout_s = self.bench.takeover_timeout_s
        start = time.monotonic()
        deadline = start + timeout_s
        reading: DeviceReading | None = None
        if isinstance(device, OcppCharger):
            await device.install_safe_default()
        while True:
            if isinstance(device, OcppCharger):
                fresh = await device.fresh_reading(max(0.05, deadline - time.monotonic()))
                reading = fresh if fresh is not None else reading
            else:
                # Re-written every round: it renews the revert timer while the device ramps.
                await device.write_power(spec.safe_kw)
                reading = await device.read()
            if reading is not None and low - margin <= reading.p_kw <= high + margin:
                break
            if time.monotonic() >= deadline:
                seen = "no fresh reading" if reading is None else f"it reads {reading.p_kw:g} kW"
                raise ProtocolError(
                    f"{device.name} did not take its safe state ({spec.safe_state.p_kw:g} kW) "
                    f"within takeover_timeout_s = {timeout_s:g} s: {seen}, its envelope allows "
                    f"[{low:g}, {high:g}] kW (+/- takeover_tolerance_kw = {margin:g}). It is "
                    "left in its safe state; check that it obeys remote control, or raise "
                    "takeover_timeout_s in the bench"
                )
            await asyncio.sleep(_TAKEOVER_POLL_S)
        bridge.reading = reading
        self.takeovers[spec.id] = {
            "p_kw": reading.p_kw,
            "wait_s": round(time.monotonic() - start, 3),
        }

    def _attach(self, spec: DeviceSpec, bridge: DeviceBridge) -> None:
        # The bridge takes the twin's link slot: the stack writes through it as before.
        slots: dict[str, list[Any]] = {
            "charger": self.charger_links,
            "battery": self.battery_links,
            "pv": self.pv_links,
        }
        links = slots[spec.kind]
        index = {
            "charger": self._charger_index,
            "battery": self._battery_index,
            "pv": self._pv_index,
        }[spec.kind][spec.replaces]
        self._twin_links.append((links, index, links[index]))
        if spec.mode == "replace":
            links[index] = bridge
            self._replaced.append((spec.kind, index, bridge))
        else:
            links[index] = TeeLink(links[index], bridge)
            self._shadowed.append((spec.kind, index, bridge))
            self.shadows[spec.id] = ShadowRecorder(spec.id, spec.kind)

    # ------------------------------------------------------------------------------ running
    def _run_paced(self, n_steps: int | None = None) -> None:
        """Pace the run, with SIGTERM taken as Ctrl-C.

        A stop while the devices are identified and taken over (before the clock starts)
        cancels that and raises :class:`SimulationError`: closing the simulation then puts every
        device taken so far in its safe state, and the results folder is marked incomplete.
        """
        try:
            super()._run_paced(n_steps)
        except KeyboardInterrupt:
            received = self.stop_signals
            by = signal.Signals(received[0]).name if received else "Ctrl-C"
            starting = self._starting
            if starting is not None and not starting.done():
                self._cancel(starting)
                raise SimulationError(
                    f"stopped by {by} before the clock started, while the bench devices were "
                    "identified and taken over",
                    0,
                ) from None
            # After the start (a second Ctrl-C while the run stops): the steps are over.
            self.stopped_early = True
            self.stopped_by = by if received else "user (Ctrl-C)"

    def _cancel(self, task: asyncio.Task[Any]) -> None:
        """Cancel ``task`` on the simulation's event loop and wait (at most ``_SAFE_TIMEOUT_S``)
        until it has ended, so that nothing talks to a device while the safe states go out."""
        loop = self._loop
        if loop is None:
            return

        async def cancel() -> None:
            task.cancel()
            await asyncio.wait([task], timeout=_SAFE_TIMEOUT_S)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel(), loop.loop).result(_SAFE_TIMEOUT_S + 1)

    def _start_twin_tasks(self) -> None:
        super()._start_twin_tasks()
        self._io_task = asyncio.create_task(self._io_loop())

    async def _io_loop(self) -> None:
        period = min([b.refresh_s for b in self.bridges] + [1.0])
        while True:
            await asyncio.sleep(period / 2)
            with contextlib.suppress(ProtocolError):
                await self._read_and_refresh()

    async def _read_and_refresh(self) -> None:
        async def one(bridge: DeviceBridge) -> None:
            try:
                reading = await bridge.read()
                shadow = self.shadows.get(bridge.id)
                if shadow is not None:
                    shadow.add_reading(reading.wall_s, reading.p_kw)
                await bridge.refresh()
            except ProtocolError as exc:
                bridge.errors.append(str(exc))
                LOGGER.warning("%s: %s", bridge.id, exc)

        await asyncio.gather(*(one(b) for b in self.bridges))

    def _step(self, k: int) -> None:
        if self._started:
            if self.watchdog.expired:
                raise SimulationError(self.watchdog.reason, k * self.dt)
            next_due = self._wall0 + (k + 1) * self.dt / self.factor
            self.watchdog.feed(next_due - time.perf_counter())
            self._call(self._read_and_refresh())
        try:
            super()._step(k)
        finally:
            held, self._pv_held = self._pv_held, []
            for j, limit_kw in held:
                self.setpoints.pv_limit_kw[j] = limit_kw
        if self._shadowed:
            self._record_shadow(k)

    def _record_shadow(self, k: int) -> None:
        now = time.monotonic()
        for kind, index, bridge in self._shadowed:
            reading = bridge.reading
            if reading is None:
                continue
            if kind == "battery":
                twin_p, twin_soc = float(self.bank.p_kw[index]), float(self.bank.soc[index])
            elif kind == "pv":
                available = float(self.site.pv_available_kw[k, index])
                cap = float(self.setpoints.pv_limit_kw[index])
                twin_p = -min(available, max(cap, 0.0)) if cap == cap else -available
                twin_soc = float("nan")
            else:
                twin_p, twin_soc = float(self.fleet.p_grid_kw[index]), float("nan")
            device_soc = float("nan") if reading.soc is None else float(reading.soc)
            sample = ShadowSample(now, k * self.dt, twin_p, reading.p_kw, twin_soc, device_soc)
            self.shadows[bridge.id].add(sample)

    async def _send_charger(self, i: int, limit_kw: float | None) -> None:
        link = self.charger_links[i]
        if isinstance(link, DeviceBridge | TeeLink):
            # An envelope refusal is logged by the envelope; the run goes on.
            await link.set_power_limit(limit_kw)
            return
        await super()._send_charger(i, limit_kw)

    # ----------------------------------------------------------------------------- safe state
    def _on_watchdog(self, reason: str) -> None:
        """From the watchdog thread: lock every bridge and write the safe states."""
        for bridge in self.bridges:
            bridge.lock()
        if self.dry_run:
            return
        for bridge in self.bridges:
            spec = bridge.spec
            try:
                if spec.protocol == "modbus":
                    # The simulation's loop may be the thing that hangs: a fresh connection.
                    asyncio.run(_safe_over_fresh_connection(spec))
                    bridge.commands.append(
                        CommandRecord(time.monotonic(), None, spec.safe_kw, "safe")
                    )
                else:
                    loop = self._loop
                    if loop is None:
                        continue
                    future = asyncio.run_coroutine_threadsafe(bridge.safe_state(), loop.loop)
                    self._unpark_until(future)
            except Exception as exc:
                LOGGER.error(
                    "%s: safe state after %s failed (%s); its last setpoint expires by itself "
                    "within %g s",
                    bridge.id,
                    reason,
                    exc,
                    _expiry_wall_s(spec),
                )

    def _unpark_until(self, future: concurrent.futures.Future[None]) -> None:
        """Let the event loop run until ``future`` is done (at most ``_SAFE_TIMEOUT_S``).

        The engine thread keeps the loop parked while a step runs, so a step that hangs would
        keep the CSMS from sending a charger its safe profile until the step returns. The run
        stops at its next step anyway, so the loop is let go even though outside readers may
        then see the stuck step half-applied; the engine re-parks it at its next engine run.

        Raises:
            TimeoutError: when ``future`` is not done within ``_SAFE_TIMEOUT_S``.
        """
        deadline = time.monotonic() + _SAFE_TIMEOUT_S
        while True:
            park = self._park
            if park is not None:
                # Again each round: the engine thread may park the loop anew meanwhile.
                park.release()
            try:
                future.result(timeout=0.05)
                return
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise

    async def _close_all(self) -> None:
        task, self._io_task = self._io_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.watchdog.stop()
        for bridge in self.bridges:
            try:
                await asyncio.wait_for(bridge.safe_state(), _SAFE_TIMEOUT_S)
            except Exception as exc:
                LOGGER.error(
                    "%s: safe state at the end failed (%s); its last setpoint expires by itself "
                    "within %g s",
                    bridge.id,
                    exc,
                    _expiry_wall_s(bridge.spec),
                )
        for bridge in self.bridges:
            with contextlib.suppress(Exception):
                await bridge.device.close()
        # The twins' own links go back in their slots, so that they are closed like the rest.
        for links, index, twin_link in self._twin_links:
            links[index] = twin_link
        await super()._close_all()

    def report(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """Real-time figures plus a ``hil`` manifest section (devices, envelope, watchdog)."""
        kpis, manifest = super().report()
        devices: list[dict[str, Any]] = []
        for spec, bridge in zip(self.bench.devices, self.bridges, strict=False):
            devices.append(
                {
                    "id": spec.id,
                    "replaces": spec.replaces,
                    "kind": spec.kind,
                    "mode": spec.mode,
                    "protocol": spec.protocol,
                    "endpoint": bridge.device.name,
                    "envelope": dict(bridge.envelope.counts),
                    "envelope_log": [vars(d) for d in list(bridge.envelope.log)[-100:]],
                    "writes": len(bridge.commands),
                    "max_abs_sent_kw": max((abs(c.sent_kw) for c in bridge.commands), default=0),
                    "errors": bridge.errors[-20:],
                }
            )
        identities = {c.device_id: c.to_dict() for c in self.identities}
        for entry in devices:
            entry["identity"] = identities.get(entry["id"])
            entry["takeover"] = self.takeovers.get(entry["id"])
        section = {
            "bench": self.bench.name,
            "dry_run": self.dry_run,
            "devices": devices,
            "watchdog": self.watchdog.to_dict(),
            "shadow": [
                recorder.report(bridge.commands)
                for (_, _, bridge), recorder in zip(
                    self._shadowed, self.shadows.values(), strict=True
                )
            ],
        }
        manifest["hil"] = section
        kpis["hil_substituted_kwh"] = round(self._substituted_kwh, 6)
        kpis["hil_pv_substituted_kwh"] = round(self._pv_substituted_kwh, 6)
        return kpis, manifest


async def _safe_over_fresh_connection(spec: DeviceSpec) -> None:
    device = make_device(spec)
    await device.connect()
    try:
        await asyncio.wait_for(device.write_power(spec.safe_kw), _SAFE_TIMEOUT_S)
    finally:
        await device.close()

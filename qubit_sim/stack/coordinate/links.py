"""Device links: the only way the stack reaches a device.

One interface per device kind, all with the same five calls. ``DirectLink`` (in-process call on the
twin), ``OcppLink`` (through the stack's CSMS), ``ModbusLink`` (through a Modbus client) and HIL
bridges implement them elsewhere; the stack depends only on these protocols.

Each control call returns a :class:`LinkResult` or raises :class:`LinkError` when the call could not
be delivered at all. A result is either

* **final** — the device applied (``accepted=True``) or refused (``accepted=False``) the request;
  in-process links answer this way, or
* **pending** — the request was accepted for delivery and the device's answer arrives later through
  the attached :class:`Reply` (wire links: the OCPP ``.conf`` or Modbus write response comes back
  after the call returned). The link calls :meth:`Reply.resolve` when the answer arrives; the
  dispatch engine collects it on its next step. A reply never resolved makes the command time out.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from qubit_sim.stack.coordinate.errors import CoordinationError, LinkError, LinkNotFoundError
from qubit_sim.stack.coordinate.timebase import SimTime

__all__ = [
    "AdapterRegistry",
    "BatteryLink",
    "ChargerLink",
    "DeviceLink",
    "LinkError",
    "LinkRegistry",
    "LinkResult",
    "PvLink",
    "Reply",
    "Telemetry",
]


@dataclass(frozen=True)
class Telemetry:
    """One reading of a device, as a link reports it.

    Attributes:
        asset_id: The device.
        time: Simulated time of the reading (seconds since scenario start, or UTC datetime).
        p_kw: Active power at the site bus [kW], load convention (> 0 draws, < 0 injects).
        status: Device state, preferably the L4 machine's state name (``CHARGING``, ``IDLE``...).
        soc: State of charge [0..1] of a battery or the connected EV, if known.
        e_kwh: Energy register [kWh]: energy drawn minus energy injected since the meter's zero.
        connected: Whether an EV is plugged in (chargers).
        voltage_v: Voltage at the device terminals [V].
        current_a: Current [A].
        power_limit_kw: Power limit the device currently applies [kW], if it reports one.
        available: Whether the device is operative (OCPP availability / inverter enabled).
    """

    asset_id: str
    time: SimTime
    p_kw: float
    status: str
    soc: float | None = None
    e_kwh: float | None = None
    connected: bool | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    power_limit_kw: float | None = None
    available: bool | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.p_kw):
            raise CoordinationError(f"{self.asset_id}: telemetry p_kw {self.p_kw!r} not finite")
        if self.soc is not None and not 0.0 <= self.soc <= 1.0:
            raise CoordinationError(
                f"{self.asset_id}: telemetry soc {self.soc!r} outside 0..1 (a fraction, not %)"
            )


class Reply:
    """An answer that arrives after the link call returned (wire links).

    The link keeps the object and calls :meth:`resolve` once, when the device answers.
    """

    __slots__ = ("_error", "_success")

    def __init__(self) -> None:
        self._success: bool | None = None
        self._error: str | None = None

    def resolve(self, success: bool, error: str | None = None) -> None:
        """Record the device's answer.

        Raises:
            LinkError: if the reply was already resolved (a device answers once).
        """
        if self._success is not None:
            raise LinkError(
                f"reply already resolved (success={self._success}); a request is answered once"
            )
        self._success = bool(success)
        self._error = error

    @property
    def done(self) -> bool:
        """Whether the answer has arrived."""
        return self._success is not None

    @property
    def success(self) -> bool | None:
        """The answer, or ``None`` while waiting."""
        return self._success

    @property
    def error(self) -> str | None:
        """Error text sent with a refusal."""
        return self._error


@dataclass(frozen=True)
class LinkResult:
    """Outcome of one link call.

    Attributes:
        accepted: False if the device (or link) refused the request.
        error: Why it was refused.
        reply: Set when the answer comes later; ``accepted`` then means "accepted for delivery".
    """

    accepted: bool
    error: str | None = None
    reply: Reply | None = None

    def __post_init__(self) -> None:
        if self.reply is not None and not self.accepted:
            raise CoordinationError("a pending LinkResult (with reply) must have accepted=True")

    @property
    def is_final(self) -> bool:
        """True when the result is the device's final answer."""
        return self.reply is None

    @classmethod
    def ok(cls) -> LinkResult:
        """The device applied the request."""
        return cls(True)

    @classmethod
    def rejected(cls, error: str) -> LinkResult:
        """The device refused the request, with a reason."""
        return cls(False, error)

    @classmethod
    def pending(cls, reply: Reply | None = None) -> LinkResult:
        """Accepted for delivery; the answer arrives through ``reply``."""
        return cls(True, None, reply if reply is not None else Reply())


@runtime_checkable
class DeviceLink(Protocol):
    """Calls every link offers. Power arguments are in kW; see the kind-specific protocols."""

    def set_power_limit(self, kw: float) -> LinkResult:
        """Set the device's power limit/setpoint [kW]."""
        ...

    def start(self) -> LinkResult:
        """Start operation (charging session, inverter on)."""
        ...

    def stop(self) -> LinkResult:
        """Stop operation."""
        ...

    def set_availability(self, available: bool) -> LinkResult:
        """Make the device operative (True) or inoperative (False)."""
        ...

    def read(self) -> Telemetry:
        """Latest telemetry."""
        ...


@runtime_checkable
class ChargerLink(DeviceLink, Protocol):
    """EV charger (one connector).

    ``set_power_limit(kw)``: maximum charging power [kW], ``kw >= 0`` (0 pauses the session);
    ``start``/``stop``: remote start/stop of the session; ``set_availability``: OCPP
    ChangeAvailability (Operative/Inoperative).
    """


@runtime_checkable
class BatteryLink(DeviceLink, Protocol):
    """Stationary battery.

    ``set_power_limit(kw)``: signed setpoint [kW] in the load convention — ``kw > 0`` charges,
    ``kw < 0`` discharges, 0 holds. Switching sign is direct (no stop in between).
    """


@runtime_checkable
class PvLink(DeviceLink, Protocol):
    """PV inverter.

    ``set_power_limit(kw)``: generation cap as a magnitude [kW], ``kw >= 0``; the plant then
    injects at most ``kw`` (``p_kw >= -kw``). ``start``/``stop`` connect/disconnect the inverter.
    """


class LinkRegistry:
    """Maps asset ids to links (one per asset).

    Each instance holds its own mapping; there is no global registry.
    """

    def __init__(self) -> None:
        self._links: dict[str, DeviceLink] = {}

    def register(self, asset_id: str, link: DeviceLink, *, replace: bool = False) -> None:
        """Register ``link`` for ``asset_id``.

        Raises:
            CoordinationError: if ``link`` lacks a link call, or the id is taken (and not
                ``replace``).
        """
        if not isinstance(asset_id, str) or not asset_id:
            raise CoordinationError(f"asset_id {asset_id!r} must be a non-empty string")
        if not isinstance(link, DeviceLink):
            missing = [
                name
                for name in ("set_power_limit", "start", "stop", "set_availability", "read")
                if not callable(getattr(link, name, None))
            ]
            raise CoordinationError(
                f"{type(link).__name__} is not a device link for {asset_id!r}: missing "
                f"{', '.join(missing)}"
            )
        if asset_id in self._links and not replace:
            raise CoordinationError(
                f"asset {asset_id!r} already has a link ({type(self._links[asset_id]).__name__}); "
                "pass replace=True to swap it"
            )
        self._links[asset_id] = link

    def unregister(self, asset_id: str) -> DeviceLink:
        """Remove and return the link of ``asset_id``.

        Raises:
            LinkNotFoundError: if none is registered.
        """
        link = self.get(asset_id)
        del self._links[asset_id]
        return link

    def get(self, asset_id: str) -> DeviceLink:
        """The link of ``asset_id``.

        Raises:
            LinkNotFoundError: if none is registered (with the closest registered id, if any).
        """
        try:
            return self._links[asset_id]
        except KeyError:
            close = difflib.get_close_matches(str(asset_id), list(self._links), n=1)
            raise LinkNotFoundError(
                asset_id, close[0] if close else None, list(self._links)
            ) from None

    def asset_ids(self) -> list[str]:
        """Registered asset ids, in registration order."""
        return list(self._links)

    def __contains__(self, asset_id: object) -> bool:
        return asset_id in self._links

    def __len__(self) -> int:
        return len(self._links)

    def __iter__(self) -> Iterator[str]:
        return iter(self._links)


AdapterRegistry = LinkRegistry
"""Name used by the Qubit coordinator documentation for the same registry."""

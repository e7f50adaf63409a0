"""Per-session charging invoices, signed by the site.

The billed energy comes from the charger's energy register (OCPP meter values, [Wh]):
``wh_delivered = meter_stop_wh - meter_start_wh``. Money is exact decimal arithmetic on the
record's own strings: ``kwh = wh_delivered / 1000`` (3 decimals) and
``cost = round_half_up(kwh * price_per_kwh, cost decimals)``, so anyone can recompute the bill
from the invoice alone. A negative price (dynamic tariffs) gives a negative cost, a credit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from qubit_sim.stack.settle.canonical import decimal_text
from qubit_sim.stack.settle.errors import SettlementError
from qubit_sim.stack.settle.keys import SiteKey
from qubit_sim.stack.settle.records import (
    check_fields,
    derived_id,
    iso_utc,
    parse_iso_utc,
    sign_fields,
)

__all__ = [
    "INVOICE_CONTEXT",
    "ChargingInvoice",
    "ChargingSession",
    "PriceLike",
    "invoice_id",
    "issue_invoices",
    "session_from_meter_values",
]

INVOICE_CONTEXT = "qubit-sim/charging-invoice/v1"
_RECORD_TYPE = "charging_invoice"
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_AMOUNT = re.compile(r"^-?\d+(\.\d+)?$")
_KWH = re.compile(r"^\d+\.\d{3}$")

PriceLike = float | int | str | Decimal


@dataclass(frozen=True)
class ChargingSession:
    """One charging session as metered by the charger.

    Attributes:
        session_id: Transaction id, unique per site.
        charger_id: Charger (charge point) id.
        vehicle_id: Vehicle or id tag, None if unknown.
        start_s: Session start, simulation time [s].
        stop_s: Session stop, simulation time [s].
        meter_start_wh: Energy register at start [Wh].
        meter_stop_wh: Energy register at stop [Wh].
    """

    session_id: str
    charger_id: str
    vehicle_id: str | None
    start_s: int
    stop_s: int
    meter_start_wh: int
    meter_stop_wh: int


def session_from_meter_values(
    session_id: str,
    charger_id: str,
    vehicle_id: str | None,
    meter_values: Sequence[tuple[int, float]],
) -> ChargingSession:
    """A session from its meter values ``(sim time [s], energy register [Wh])``, in time order.

    The register is rounded to whole Wh; start and stop are the first and last sample.

    Raises:
        SettlementError: for fewer than two samples, time going backwards or a falling register.
    """
    if len(meter_values) < 2:
        raise SettlementError(
            f"session {session_id!r} needs at least a start and a stop meter value, "
            f"got {len(meter_values)}"
        )
    for (t0, e0), (t1, e1) in zip(meter_values, meter_values[1:], strict=False):
        if t1 < t0 or e1 < e0:
            raise SettlementError(
                f"session {session_id!r}: meter value ({t1} s, {e1} Wh) follows ({t0} s, {e0} Wh);"
                " time and the energy register must not decrease"
            )
    (first_s, first_wh), (last_s, last_wh) = meter_values[0], meter_values[-1]
    return ChargingSession(
        session_id,
        charger_id,
        vehicle_id,
        int(first_s),
        int(last_s),
        int(round(float(first_wh))),
        int(round(float(last_wh))),
    )


def invoice_id(site_id: str, session_id: str) -> str:
    """``inv_<32 hex>``, derived from site and session id only."""
    return derived_id("inv", site_id, session_id)


@dataclass(frozen=True)
class ChargingInvoice:
    """The signed bill of one charging session (field meanings in the module doc)."""

    invoice_id: str
    site_id: str
    session_id: str
    charger_id: str
    vehicle_id: str | None
    started_at: str
    stopped_at: str
    meter_start_wh: int
    meter_stop_wh: int
    wh_delivered: int
    kwh: str
    price_per_kwh: str
    cost: str
    currency: str
    issued_at: str
    public_key_id: str
    signature: str

    kind = "invoice"

    @property
    def item_id(self) -> str:
        """The identifier verification reports name."""
        return self.invoice_id

    @property
    def settled_at(self) -> datetime:
        """The instant that decides the settlement period: the session stop."""
        return parse_iso_utc(self.stopped_at)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record, with its ``type`` field."""
        return {"type": _RECORD_TYPE, **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any) -> ChargingInvoice:
        """Read a record strictly: exact field set and types.

        Raises:
            SettlementError: naming the first bad field.
        """
        types: dict[str, type | tuple[type, ...]] = {"type": str}
        for name in _FIELDS:
            types[name] = int if name.endswith("_wh") or name.startswith("wh_") else str
        types["vehicle_id"] = (str, type(None))
        check_fields(data, types, "invoice")
        if data["type"] != _RECORD_TYPE:
            raise SettlementError(f"invoice type {data['type']!r} is not {_RECORD_TYPE!r}")
        return cls(**{name: data[name] for name in _FIELDS})

    def problems(self) -> list[str]:
        """Inconsistencies between the fields (the arithmetic is recomputed), none if sound."""
        found = []
        if self.invoice_id != invoice_id(self.site_id, self.session_id):
            found.append("invoice_id does not derive from site and session")
        try:
            started = parse_iso_utc(self.started_at)
            stopped = parse_iso_utc(self.stopped_at)
            issued = parse_iso_utc(self.issued_at)
        except SettlementError as exc:
            return [*found, str(exc)]
        if stopped < started or issued < stopped:
            found.append("times out of order (started <= stopped <= issued)")
        if self.wh_delivered != self.meter_stop_wh - self.meter_start_wh or self.wh_delivered < 0:
            found.append("wh_delivered != meter_stop_wh - meter_start_wh (or negative)")
        if self.kwh != decimal_text(Decimal(self.wh_delivered) / 1000, 3) or not _KWH.match(
            self.kwh
        ):
            found.append("kwh does not equal wh_delivered / 1000")
        if not _CURRENCY.match(self.currency):
            found.append(f"currency {self.currency!r} is not an ISO 4217 code")
        if not (_AMOUNT.match(self.price_per_kwh) and _AMOUNT.match(self.cost)):
            return [*found, "price_per_kwh or cost is not a decimal amount"]
        decimals = len(self.cost.partition(".")[2])
        expected = decimal_text(Decimal(self.kwh) * Decimal(self.price_per_kwh), decimals)
        if self.cost != expected:
            found.append(f"cost {self.cost} != kwh * price_per_kwh = {expected}")
        return found


_FIELDS = tuple(ChargingInvoice.__dataclass_fields__)


def issue_invoices(
    sessions: Iterable[ChargingSession],
    key: SiteKey,
    site_id: str,
    *,
    scenario_start: datetime,
    price_per_kwh: PriceLike | Callable[[ChargingSession], PriceLike],
    currency: str,
    price_decimals: int = 5,
    cost_decimals: int = 2,
) -> list[ChargingInvoice]:
    """Sign one invoice per session, issued at the session stop (simulated time).

    Args:
        sessions: The sessions to bill.
        key: The site's signing key; must belong to ``site_id``.
        site_id: The billing site.
        scenario_start: UTC instant of simulation time 0.
        price_per_kwh: Energy price [currency/kWh], one for all or a function of the session.
        currency: ISO 4217 code, e.g. ``"EUR"``.
        price_decimals: Decimals the price is written with.
        cost_decimals: Decimals of the cost: the currency's minor unit (2 for EUR, 0 for JPY).

    Returns:
        Invoices sorted by stop time, then session id.

    Raises:
        SettlementError: for a bad currency, duplicate session ids, a stop before the start or
            a falling energy register.
    """
    if key.site_id != site_id:
        raise SettlementError(f"key of site {key.site_id!r} cannot sign for site {site_id!r}")
    if not _CURRENCY.match(currency):
        raise SettlementError(f"currency {currency!r} is not an ISO 4217 code such as 'EUR'")
    seen: set[str] = set()
    invoices = []
    for session in sessions:
        if session.session_id in seen:
            raise SettlementError(f"session id {session.session_id!r} appears twice")
        seen.add(session.session_id)
        if session.stop_s < session.start_s or session.meter_stop_wh < session.meter_start_wh:
            raise SettlementError(
                f"session {session.session_id!r} stops before it starts or its energy register "
                f"falls ({session.meter_start_wh} -> {session.meter_stop_wh} Wh)"
            )
        price = price_per_kwh(session) if callable(price_per_kwh) else price_per_kwh
        price_text = decimal_text(price, price_decimals)
        wh_delivered = int(session.meter_stop_wh) - int(session.meter_start_wh)
        kwh_text = decimal_text(Decimal(wh_delivered) / 1000, 3)
        stopped_at = iso_utc(scenario_start + timedelta(seconds=int(session.stop_s)))
        fields: dict[str, Any] = {
            "type": _RECORD_TYPE,
            "invoice_id": invoice_id(site_id, session.session_id),
            "site_id": site_id,
            "session_id": session.session_id,
            "charger_id": session.charger_id,
            "vehicle_id": session.vehicle_id,
            "started_at": iso_utc(scenario_start + timedelta(seconds=int(session.start_s))),
            "stopped_at": stopped_at,
            "meter_start_wh": int(session.meter_start_wh),
            "meter_stop_wh": int(session.meter_stop_wh),
            "wh_delivered": wh_delivered,
            "kwh": kwh_text,
            "price_per_kwh": price_text,
            "cost": decimal_text(Decimal(kwh_text) * Decimal(price_text), cost_decimals),
            "currency": currency,
            "issued_at": stopped_at,
            "public_key_id": key.key_id,
        }
        fields["signature"] = sign_fields(fields, key, INVOICE_CONTEXT)
        invoices.append(ChargingInvoice.from_dict(fields))
    invoices.sort(key=lambda invoice: (invoice.stopped_at, invoice.session_id))
    return invoices

"""``summary.md``: the settlement of a run, readable by a person.

Everything in it comes from the settlement's own tables, so settling the same run twice writes the
same text (no wall-clock time, no paths of the machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from qubit_sim.stack.settle.artifacts import SettlementSummary
from qubit_sim.stack.settle.bills import PARTIAL_MARK, bill_totals, partial_note, period_coverage
from qubit_sim.stack.settle.certificates import EnergyCertificate
from qubit_sim.stack.settle.invoices import ChargingInvoice

__all__ = ["SummaryInputs", "render_summary"]

# Beyond this many bill lines the page points to the CSV instead of repeating it.
_MAX_LINE_ITEMS = 120


@dataclass(frozen=True)
class SummaryInputs:
    """What the summary page shows.

    Attributes:
        title: Heading, e.g. ``depot_overnight — uncontrolled, seed 1``.
        run_status: ``complete`` or ``incomplete`` (and how far it got).
        period: Billing and ledger period.
        currency: Tariff currency.
        signed: The signed artefacts written.
        bill_lines: Line items of the site bill.
        invoices: Session invoices.
        open_sessions: Sessions still plugged at the end (not invoiced).
        open_wh: Energy metered so far in those sessions [Wh].
        certificates: PV certificates.
        carbon: Carbon accounts (:func:`~qubit_sim.stack.settle.carbon.carbon_accounts`).
        reconciliation: Reconciliation result (:func:`~qubit_sim.stack.settle.reconcile.reconcile`).
    """

    title: str
    run_status: str
    period: str
    currency: str
    signed: SettlementSummary
    bill_lines: pd.DataFrame
    invoices: Sequence[ChargingInvoice]
    open_sessions: int
    open_wh: int
    certificates: Sequence[EnergyCertificate]
    carbon: dict[str, Any]
    reconciliation: dict[str, Any]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _money(value: float) -> str:
    text = f"{value:,.2f}"
    return text[1:] if text == "-0.00" else text


def _bill_section(data: SummaryInputs) -> list[str]:
    out = [f"## Site bill ({data.currency}), per {data.period}", ""]
    totals = bill_totals(data.bill_lines)
    if totals.empty:
        return [*out, "No steps were recorded: nothing to bill.", ""]
    partial = period_coverage(data.bill_lines)["partial"]
    rows = [
        [
            str(period) + (PARTIAL_MARK if partial[period] else ""),
            f"{row.import_kwh:,.1f}",
            f"{row.export_kwh:,.1f}",
            f"{row.peak_kw:,.1f}",
            _money(row.energy),
            _money(row.demand),
            _money(row.export_credit),
            _money(row.total),
        ]
        for period, row in totals.iterrows()
    ]
    sums = totals.sum()
    rows.append(
        [
            "**all**",
            f"{sums.import_kwh:,.1f}",
            f"{sums.export_kwh:,.1f}",
            "",
            _money(sums.energy),
            _money(sums.demand),
            _money(sums.export_credit),
            f"**{_money(sums.total)}**",
        ]
    )
    header = [
        "period",
        "import kWh",
        "export kWh",
        "peak kW",
        "energy",
        "demand",
        "export",
        "total",
    ]
    out += _table(header, rows)
    note = partial_note(data.bill_lines)
    if note is not None:
        # escaped: a line opening with "* " would read as a Markdown list item
        out += ["", "\\" + note]
    if len(data.bill_lines) > _MAX_LINE_ITEMS:
        return [*out, "", f"{len(data.bill_lines)} line items: see `bill_lines.csv`.", ""]
    out += ["", "Line items (`bill_lines.csv`):", ""]
    items = [
        [
            str(line.period),
            str(line.line) + (f" ({line.rate})" if line.rate else ""),
            "" if pd.isna(line.quantity) else f"{line.quantity:,.3f} {line.unit}",
            "" if pd.isna(line.unit_price) else f"{line.unit_price:g}",
            _money(line.amount),
        ]
        for line in data.bill_lines.itertuples(index=False)
    ]
    out += _table(["period", "line", "quantity", "unit price", "amount"], items)
    return [*out, ""]


def _items_section(data: SummaryInputs) -> list[str]:
    signed = data.signed
    invoiced_wh = sum(invoice.wh_delivered for invoice in data.invoices)
    revenue = sum(float(invoice.cost) for invoice in data.invoices)
    produced = sum(cert.wh_produced for cert in data.certificates)
    exported = sum(cert.wh_exported for cert in data.certificates)
    inverters = len({cert.asset_id for cert in data.certificates})
    return [
        "## Charging invoices",
        "",
        f"{len(data.invoices)} invoices, {invoiced_wh / 1000:,.3f} kWh metered, "
        f"{_money(revenue)} {data.currency} billed to drivers (`invoices.jsonl`).",
        f"{data.open_sessions} sessions still plugged at the end of the run are not invoiced "
        f"({data.open_wh / 1000:,.3f} kWh metered so far).",
        "",
        "## PV certificates",
        "",
        f"{len(data.certificates)} hourly certificates from {inverters} inverter(s): "
        f"{produced / 1000:,.3f} kWh produced, {exported / 1000:,.3f} kWh exported, "
        f"{(produced - exported) / 1000:,.3f} kWh consumed on site (`certificates.jsonl`).",
        "",
        "## Ledger",
        "",
        f"{len(signed.periods)} entry(ies) (`ledger.jsonl`), signed by site `{signed.site_id}` with "
        f"key `{signed.public_key_id}` (`{signed.public_key_fingerprint}`).",
        f"Head: `{signed.ledger_head}`.",
        "",
    ]


def _carbon_section(data: SummaryInputs) -> list[str]:
    rows = []
    for account in [*data.carbon["periods"], {"period": "**all**", **data.carbon["total"]}]:
        rows.append(
            [
                str(account["period"]),
                f"{account['grid_import_kwh']:,.1f}",
                f"{account['grid_import_kg']:,.1f}",
                f"{account['pv_self_consumed_kwh']:,.1f}",
                f"{account['pv_self_consumption_avoided_kg']:,.1f}",
                f"{account['battery_shift_avoided_kg']:,.1f}",
            ]
        )
    header = [
        "period",
        "grid import kWh",
        "emitted kg CO2",
        "PV self-consumed kWh",
        "avoided by PV kg",
        "avoided by battery kg",
    ]
    sessions_kg = sum(session["co2_kg"] for session in data.carbon["sessions"])
    return [
        "## Carbon",
        "",
        *_table(header, rows),
        "",
        f"Charging sessions: {sessions_kg:,.2f} kg CO2 over {len(data.carbon['sessions'])} "
        "sessions (`carbon.json`).",
        "",
    ]


def _reconciliation_section(data: SummaryInputs) -> list[str]:
    verdict = "PASS" if data.reconciliation["passed"] else "FAIL"
    rows = []
    for check in data.reconciliation["checks"]:
        if check["passed"] is None:
            rows.append([check["name"], "", "", "", "", f"not checked: {check['reason']}"])
            continue
        rows.append(
            [
                check["name"],
                f"{check['measured_wh']:,.1f}",
                f"{check['reference_wh']:,.1f}",
                f"{check['difference_wh']:.3g}",
                f"{check['tolerance_wh']:,.0f}",
                check["status"],
            ]
        )
    header = ["check", "measured Wh", "reference Wh", "difference Wh", "tolerance Wh", "verdict"]
    notes = [f"Note: {note}." for note in data.reconciliation.get("notes", ())]
    return [f"## Reconciliation: {verdict}", "", *_table(header, rows), "", *notes]


def render_summary(data: SummaryInputs) -> str:
    """The Markdown text of ``summary.md``."""
    lines = [f"# Settlement: {data.title}", "", f"Run: {data.run_status}.", ""]
    lines += _bill_section(data)
    lines += _items_section(data)
    lines += _carbon_section(data)
    lines += _reconciliation_section(data)
    return "\n".join(lines)

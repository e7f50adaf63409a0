"""Commands on a run's results folder: ``settle``, ``verify``, ``export``.

Heavy packages are imported inside the commands, so ``qubit-sim --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from qubit_sim.cli.common import (
    EXIT_FAILED,
    _console,
    _fail_scenario,
    _wide_when_piped,
    app,
)

__all__ = ["SETTLE_PERIODS", "export", "settle", "verify"]


SETTLE_PERIODS = ("month", "week", "day")


@app.command()
def settle(
    results: Annotated[Path, typer.Argument(help="Results folder of a run.")],
    period: Annotated[
        str | None,
        typer.Option(
            help="Billing and ledger period: month, week or day (default: the scenario's)."
        ),
    ] = None,
    key_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of site signing keys (default: $QUBIT_SIM_KEY_DIR or "
            "~/.config/qubit-sim/keys)."
        ),
    ] = None,
) -> None:
    """Settle a run: site bill, signed invoices and PV certificates, ledger, carbon, reconciliation.

    Replaces the run's settlement/ folder. Exits 1 if reconciliation fails.

    Billing periods the run covers only in part are marked * and billed in full.
    """
    from qubit_sim.errors import QubitSimError
    from qubit_sim.stack.settle.run import settle_results

    console = _console()
    if period is not None and period not in SETTLE_PERIODS:
        _fail_scenario(ValueError(f"--period {period!r} is not one of {', '.join(SETTLE_PERIODS)}"))
    try:
        report = settle_results(results, period=period, key_dir=key_dir)
    except QubitSimError as exc:
        _fail_scenario(exc)
    _print_settlement(console, report)
    if not report.reconciled:
        raise typer.Exit(EXIT_FAILED)


def _print_settlement(console: Any, report: Any) -> None:
    from rich.table import Table

    from qubit_sim.stack.settle.bills import (
        PARTIAL_MARK,
        bill_totals,
        partial_note,
        period_coverage,
    )

    currency = report.currency
    partial = period_coverage(report.bill_lines)["partial"]
    # The export credit is shown as summary.md shows it: a positive amount that the total
    # subtracts (bill_lines.csv books it as a negative amount).
    header = (
        "period",
        "import kWh",
        "export kWh",
        "peak kW",
        "energy",
        "demand",
        "export credit",
        "total",
    )
    rows = [
        [
            str(period) + (PARTIAL_MARK if partial[period] else ""),
            f"{row.import_kwh:,.1f}",
            f"{row.export_kwh:,.1f}",
            f"{row.peak_kw:,.1f}",
            f"{row.energy:,.2f}",
            f"{row.demand:,.2f}",
            f"{row.export_credit + 0.0:,.2f}",
            f"{row.total:,.2f}",
        ]
        for period, row in bill_totals(report.bill_lines).iterrows()
    ]
    table = Table(
        title=f"Site bill per {report.period} ({currency})", title_justify="left", show_edge=False
    )
    for index, name in enumerate(header):
        # Each column as wide as its widest number (headers wrap between words), so an
        # 80-column terminal shows every digit; narrower ones fold digits, never drop them.
        width = max([len(word) for word in name.split()] + [len(c[index]) for c in rows])
        table.add_column(
            name, justify="left" if index == 0 else "right", width=width, overflow="fold"
        )
    for cells in rows:
        table.add_row(*cells)
    _wide_when_piped(console, 120)
    console.print(table)
    note = partial_note(report.bill_lines)
    if note is not None:
        console.print(note, style="yellow", highlight=False, markup=False)
    signed = report.signed
    total = report.carbon["total"]
    console.print(
        f"{signed.invoice_count} invoices, {signed.certificate_count} certificates, "
        f"{len(signed.periods)} ledger entries; {report.open_sessions} sessions still plugged "
        f"(not invoiced)\ncarbon: {total['grid_import_kg']:,.1f} kg CO2 from grid imports, "
        f"{total['pv_self_consumption_avoided_kg']:,.1f} kg avoided by PV, "
        f"{total['battery_shift_avoided_kg'] + 0.0:,.1f} kg by the battery"
    )
    checks = Table(title="Reconciliation", title_justify="left")
    for name in ("check", "difference Wh", "tolerance Wh", "verdict"):
        checks.add_column(name, justify="left" if name in ("check", "verdict") else "right")
    for check in report.reconciliation["checks"]:
        if check["passed"] is None:
            checks.add_row(check["name"], "", "", "not checked")
            continue
        colour = "green" if check["passed"] else "red"
        checks.add_row(
            check["name"],
            f"{check['difference_wh']:.3g}",
            f"{check['tolerance_wh']:,.0f}",
            f"[{colour}]{check['status']}[/]",
        )
    console.print(checks)
    if report.reconciled:
        console.print("[bold green]reconciliation: PASS[/]")
    else:
        failed = [c["name"] for c in report.reconciliation["checks"] if c["passed"] is False]
        console.print(f"[bold red]reconciliation: FAIL[/] ({', '.join(failed)})")
    console.print(f"settlement: [bold]{report.folder}[/]", highlight=False)


@app.command()
def verify(
    results: Annotated[Path, typer.Argument(help="Results folder of a settled run.")],
) -> None:
    """Verify a settled run against its manifest; exits 1 naming the first tampered item.

    Checks every signature, Merkle inclusion and the ledger hash chain against the key
    fingerprint and ledger head published in manifest.json, and the unsigned settlement files
    against their digests there.
    """
    from rich.markup import escape

    from qubit_sim.stack.settle.run import UNSETTLED, verify_results

    console = _console()
    if not results.is_dir():
        _fail_scenario(ValueError(f"results folder {results} does not exist"))
    report = verify_results(results)
    if report.ok:
        console.print(
            f"[bold green]verified:[/] {report.ledger_entries} ledger entries, "
            f"{report.certificates} certificates, {report.invoices} invoices; key "
            f"{report.public_key_fingerprint}, ledger head {report.ledger_head}",
            highlight=False,
        )
        return
    first = report.first
    assert first is not None
    if first.kind == UNSETTLED:
        console.print(
            f"[bold yellow]not settled:[/] {escape(str(results))} has no settlement to verify; "
            f"run `qubit-sim settle {escape(str(results))}` first",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_FAILED)
    where = f" ({first.file}" + (f" line {first.line})" if first.line else ")")
    console.print(f"[bold red]TAMPERED:[/] {first}{where}", highlight=False, soft_wrap=True)
    more = len(report.findings) - 1
    if more:
        console.print(f"{more} further finding(s):", highlight=False)
        for finding in report.findings[1:6]:
            console.print(f"  {finding}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_FAILED)


@app.command()
def export(
    results: Annotated[Path, typer.Argument(help="Results folder written by 'qubit-sim run'.")],
    format_: Annotated[
        str, typer.Option("--format", help="Export format; 'qubit' (Qubit v0.1 JSON).")
    ] = "qubit",
    out: Annotated[
        Path | None, typer.Option(help="Output folder (default: <results>/qubit).")
    ] = None,
    interval: Annotated[
        str | None, typer.Option(help="Time-series interval, e.g. 15m or 1h (default: the step).")
    ] = None,
    organization_id: Annotated[
        str | None, typer.Option(help="Organization id (org_...) (default: org_<site>).")
    ] = None,
) -> None:
    """Export a run as Qubit v0.1 JSON: organization, site, assets, meters, time series.

    Every document conforms to the official Qubit v0.1 JSON Schemas; timestamps are UTC.
    """
    if format_ != "qubit":
        _fail_scenario(ValueError(f"unknown export format {format_!r}; supported: qubit"))
    from qubit_sim.stack.data import ExportError, export_qubit

    target = out if out is not None else results / "qubit"
    try:
        files = export_qubit(results, target, organization_id=organization_id, interval=interval)
    except ExportError as exc:
        _fail_scenario(exc)
    _console().print(f"wrote {len(files)} Qubit documents to [bold]{target}[/]", highlight=False)

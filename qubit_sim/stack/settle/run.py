"""Settle a run: bills, invoices, certificates, carbon and reconciliation from its results folder.

:func:`settle_results` writes ``<results>/settlement/``::

    bill_lines.parquet, .csv  the site bill per billing period, one row per line item
    summary.md                the whole settlement, readable
    carbon.json               emissions and avoided emissions, per period and per session
    reconciliation.json       metered and settled energy against the twins, with verdicts
    certificates.jsonl        signed hourly PV certificates      } written by
    invoices.jsonl            signed charging-session invoices   } write_settlement_artifacts,
    ledger.jsonl              one signed entry per period        } checked by verify_settlement
    keys/site_public.pem|hex  the site's public key

and adds a ``settlement`` section to ``manifest.json``: the public key fingerprint and ledger head
that :func:`verify_results` checks the folder against, SHA-256 digests of the unsigned files
above (they detect changes to those files; only the signed records prove who issued them), and
``partial_periods``, the billing periods the run covers only in part. How much of each period the
run covered is in the bill lines (unsigned); the signed records do not carry it.

Everything is computed from what the site's meters counted (site meter import/export, charger
registers, PV energy registers), not from the simulator's internal state; the reconciliation
compares the two. After a ``wire`` run the invoices come from the transactions the stack's CSMS
received over OCPP (``csms_transactions.parquet``), in ``fast`` mode from the charger registers
the run read at plug-in and unplug (``sessions.parquet``).

Settling a run again replaces the folder; with the same key the bytes are the same, because
every input is simulated data and Ed25519 signatures are deterministic.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qubit_sim.core.results import write_json
from qubit_sim.core.tariff import Tariff
from qubit_sim.stack.settle.artifacts import SettlementSummary, write_settlement_artifacts
from qubit_sim.stack.settle.bills import (
    bill_lines,
    period_coverage,
    period_labels,
    tariff_for_period,
)
from qubit_sim.stack.settle.canonical import sha256_hex
from qubit_sim.stack.settle.carbon import carbon_accounts
from qubit_sim.stack.settle.certificates import EnergyCertificate, issue_certificates
from qubit_sim.stack.settle.inputs import RunInputs, default_key_dir, read_run_inputs
from qubit_sim.stack.settle.invoices import ChargingInvoice, issue_invoices
from qubit_sim.stack.settle.keys import SiteKey, load_or_create_site_key
from qubit_sim.stack.settle.metering import (
    charging_sessions,
    csms_sessions,
    metered_sessions,
    pv_hourly_metered,
)
from qubit_sim.stack.settle.reconcile import reconcile
from qubit_sim.stack.settle.summary import SummaryInputs, render_summary
from qubit_sim.stack.settle.verify import Finding, VerifyReport, verify_settlement

__all__ = [
    "BILL_LINES_CSV",
    "BILL_LINES_PARQUET",
    "CARBON_FILE",
    "RECONCILIATION_FILE",
    "SETTLEMENT_DIR",
    "SUMMARY_FILE",
    "SettlementReport",
    "UNSETTLED",
    "settle_results",
    "verify_results",
]

SETTLEMENT_DIR = "settlement"
BILL_LINES_PARQUET = "bill_lines.parquet"
BILL_LINES_CSV = "bill_lines.csv"
CARBON_FILE = "carbon.json"
RECONCILIATION_FILE = "reconciliation.json"
SUMMARY_FILE = "summary.md"
#: :class:`~.verify.Finding` kind of a results folder that was never settled: nothing to verify,
#: which is not tampering.
UNSETTLED = "unsettled"
_UNSIGNED_FILES = (
    BILL_LINES_PARQUET,
    BILL_LINES_CSV,
    CARBON_FILE,
    RECONCILIATION_FILE,
    SUMMARY_FILE,
)


@dataclass(frozen=True)
class SettlementReport:
    """Outcome of :func:`settle_results`.

    Attributes:
        results_dir: The settled results folder.
        folder: ``<results>/settlement``.
        period: Billing and ledger period (``month``, ``week`` or ``day``).
        currency: Tariff currency.
        signed: Summary of the signed artefacts (key fingerprint, ledger head, counts).
        bill_lines: Line items of the site bill (:func:`~.bills.bill_lines`).
        carbon: Carbon accounts, as written to ``carbon.json``.
        reconciliation: Reconciliation, as written to ``reconciliation.json``.
        open_sessions: Sessions still plugged at the end of the run (not invoiced).
        files: ``sha256:<hex>`` of each unsigned settlement file, by file name.
    """

    results_dir: Path
    folder: Path
    period: str
    currency: str
    signed: SettlementSummary
    bill_lines: pd.DataFrame
    carbon: dict[str, Any]
    reconciliation: dict[str, Any]
    open_sessions: int
    files: dict[str, str]

    @property
    def reconciled(self) -> bool:
        """True when no reconciliation check failed."""
        return bool(self.reconciliation["passed"])

    @property
    def partial_periods(self) -> tuple[str, ...]:
        """Billing periods the run covers only in part (their demand charge is billed in full)."""
        coverage = period_coverage(self.bill_lines)
        return tuple(str(period) for period in coverage.index[coverage["partial"]])

    @property
    def bill_total(self) -> float:
        """Sum of the site bill over all periods [currency]."""
        lines = self.bill_lines
        return float(lines.loc[lines["line"] == "total", "amount"].sum()) if len(lines) else 0.0

    def to_manifest(self) -> dict[str, Any]:
        """The ``settlement`` section of the run manifest."""
        return {
            "folder": SETTLEMENT_DIR,
            "period": self.period,
            **self.signed.to_manifest(),
            "currency": self.currency,
            "bill_total": self.bill_total,
            "partial_periods": list(self.partial_periods),
            "reconciliation": "pass" if self.reconciled else "fail",
            "files": dict(self.files),
        }


def _run_status(manifest: dict[str, Any], n_steps: int) -> str:
    status = str(manifest.get("status", "unknown"))
    planned = manifest.get("n_steps")
    return f"{status}, {n_steps} of {planned} steps recorded" if planned else status


def _write_tables(
    folder: Path, lines: pd.DataFrame, carbon: dict[str, Any], recon: dict[str, Any], text: str
) -> dict[str, str]:
    lines.to_parquet(folder / BILL_LINES_PARQUET, index=False)
    lines.to_csv(folder / BILL_LINES_CSV, index=False, lineterminator="\n")
    write_json(folder / CARBON_FILE, carbon)
    write_json(folder / RECONCILIATION_FILE, recon)
    (folder / SUMMARY_FILE).write_text(text, encoding="utf-8")
    return {name: "sha256:" + sha256_hex((folder / name).read_bytes()) for name in _UNSIGNED_FILES}


def _period_of(inputs: RunInputs, period: str, items: list[Any]) -> dict[str, str]:
    if not items:
        return {}
    instants = pd.DatetimeIndex([item.settled_at for item in items])
    labels = period_labels(instants, inputs.tz, period)
    return {item.item_id: str(label) for item, label in zip(items, labels, strict=True)}


def _total_kw(devices: dict[str, np.ndarray], n_steps: int) -> np.ndarray:
    return np.sum(list(devices.values()), axis=0) if devices else np.zeros(n_steps)


@dataclass(frozen=True)
class _Settled:
    """Everything computed from a run before anything is written."""

    lines: pd.DataFrame
    metered: pd.DataFrame
    invoices: list[ChargingInvoice]
    certificates: list[EnergyCertificate]
    carbon: dict[str, Any]
    reconciliation: dict[str, Any]

    @property
    def open_sessions(self) -> pd.DataFrame:
        return self.metered[self.metered["is_open"].astype(bool)]


def _settle(inputs: RunInputs, tariff: Tariff, key: SiteKey) -> _Settled:
    import_kw = inputs.column("grid_import_kw")
    export_kw = inputs.column("grid_export_kw")
    carbon_g = inputs.column("carbon_g_per_kwh")
    metered = metered_sessions(inputs) if inputs.transactions is None else csms_sessions(inputs)
    invoices = issue_invoices(
        charging_sessions(metered),
        key,
        inputs.site_id,
        scenario_start=inputs.start,
        price_per_kwh=inputs.context.driver_price_per_kwh,
        currency=tariff.currency,
    )
    pv = inputs.devices("pv")
    hourly = pv_hourly_metered(inputs.times, inputs.step_s, pv, export_kw, carbon_g)
    certificates = issue_certificates(hourly, key, inputs.site_id)
    carbon = carbon_accounts(
        step_s=inputs.step_s,
        periods=period_labels(inputs.times, inputs.tz, tariff.billing_period),
        import_kw=import_kw,
        export_kw=export_kw,
        pv_kw=_total_kw(pv, inputs.n_steps),
        battery_kw=_total_kw(inputs.devices("battery"), inputs.n_steps),
        carbon_g_per_kwh=carbon_g,
        sessions=metered,
    )
    return _Settled(
        lines=bill_lines(inputs.times, inputs.step_s, import_kw, export_kw, tariff, inputs.tz),
        metered=metered,
        invoices=invoices,
        certificates=certificates,
        carbon=carbon,
        reconciliation=reconcile(inputs, metered, invoices, hourly, certificates),
    )


def _summary(
    inputs: RunInputs, tariff: Tariff, settled: _Settled, signed: SettlementSummary
) -> str:
    manifest = inputs.manifest
    open_rows = settled.open_sessions
    return render_summary(
        SummaryInputs(
            title=(
                f"{manifest.get('scenario', inputs.context.site_name)} — "
                f"{manifest.get('controller', 'unknown controller')}, "
                f"seed {manifest.get('seed', '?')}"
            ),
            run_status=_run_status(manifest, inputs.n_steps),
            period=tariff.billing_period,
            currency=tariff.currency,
            signed=signed,
            bill_lines=settled.lines,
            invoices=settled.invoices,
            open_sessions=len(open_rows),
            open_wh=int(open_rows["wh_metered"].sum()) if len(open_rows) else 0,
            certificates=settled.certificates,
            carbon=settled.carbon,
            reconciliation=settled.reconciliation,
        )
    )


def settle_results(
    results_dir: str | os.PathLike[str],
    *,
    period: str | None = None,
    key_dir: str | os.PathLike[str] | None = None,
) -> SettlementReport:
    """Settle a run's results folder (layout in the module doc), replacing any earlier settlement.

    Args:
        results_dir: A run's results folder, complete or not (what was recorded is settled).
        period: ``"month"``, ``"week"`` or ``"day"`` for bills and ledger entries (site-local
            calendar); default: the scenario's ``tariff.billing_period``.
        key_dir: Folder of site signing keys; the site's key is created there on first use.
            Default: :func:`~.inputs.default_key_dir` (``$QUBIT_SIM_KEY_DIR`` or
            ``~/.config/qubit-sim/keys``).

    Returns:
        The :class:`SettlementReport`; ``report.reconciled`` tells whether reconciliation passed.

    Raises:
        SettlementError: unreadable results, an unknown period, or an unusable key folder.
        TariffError: a tariff that cannot price the run (e.g. a step not dividing the demand
            window).
    """
    inputs = read_run_inputs(results_dir)
    tariff = tariff_for_period(inputs.context.tariff, period)
    key = load_or_create_site_key(key_dir or default_key_dir(), inputs.site_id)
    settled = _settle(inputs, tariff, key)

    folder = inputs.folder / SETTLEMENT_DIR
    staging = inputs.folder / f".{SETTLEMENT_DIR}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    labels = _period_of(inputs, tariff.billing_period, [*settled.certificates, *settled.invoices])
    signed = write_settlement_artifacts(
        staging, settled.certificates, settled.invoices, lambda item: labels[item.item_id], key
    )
    text = _summary(inputs, tariff, settled, signed)
    files = _write_tables(staging, settled.lines, settled.carbon, settled.reconciliation, text)
    # Swap the finished folder in: a settlement that failed half-way never replaces a good one.
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    report = SettlementReport(
        results_dir=inputs.folder,
        folder=folder,
        period=tariff.billing_period,
        currency=tariff.currency,
        signed=replace(signed, folder=folder),
        bill_lines=settled.lines,
        carbon=settled.carbon,
        reconciliation=settled.reconciliation,
        open_sessions=len(settled.open_sessions),
        files=files,
    )
    inputs.manifest["settlement"] = report.to_manifest()
    write_json(inputs.folder / "manifest.json", inputs.manifest)
    return report


def _file_findings(folder: Path, files: Any) -> list[Finding]:
    if not isinstance(files, dict):
        return []
    findings = []
    for name, digest in sorted(files.items()):
        path = folder / str(name)
        if not path.is_file():
            findings.append(Finding("file", str(name), "is missing", str(name)))
        elif "sha256:" + sha256_hex(path.read_bytes()) != digest:
            findings.append(
                Finding("file", str(name), "does not match its digest in manifest.json", str(name))
            )
    return findings


def verify_results(results_dir: str | os.PathLike[str]) -> VerifyReport:
    """Verify a settled results folder against what its manifest published.

    Checks every signature, Merkle inclusion and the ledger hash chain of ``<results>/settlement``
    (:func:`~.verify.verify_settlement`) against the public key fingerprint and ledger head in
    ``manifest.json``, then the digests of the unsigned settlement files.

    Returns:
        A :class:`~.verify.VerifyReport`; ``report.first_failure`` names the first tampered item.
    """
    results = Path(results_dir)
    manifest_path = results / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problem = f"cannot be read: {exc}"
        return VerifyReport(False, (Finding("file", "manifest.json", problem, "manifest.json"),))
    section = manifest.get("settlement") if isinstance(manifest, dict) else None
    if not isinstance(section, dict) or "public_key_fingerprint" not in section:
        problem = "has no settlement section; run `qubit-sim settle` on this folder first"
        finding = Finding(UNSETTLED, "manifest.json", problem, "manifest.json")
        return VerifyReport(False, (finding,))
    folder = results / str(section.get("folder", SETTLEMENT_DIR))
    report = verify_settlement(
        folder,
        expected_fingerprint=section["public_key_fingerprint"],
        expected_ledger_head=section.get("ledger_head"),
    )
    extra = _file_findings(folder, section.get("files")) if folder.is_dir() else []
    if not extra:
        return report
    findings = (*report.findings, *extra)
    return replace(report, ok=False, findings=findings)

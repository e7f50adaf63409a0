"""``qubit-sim settle`` and ``qubit-sim verify`` on a real run, as a user would use them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import qubit_sim
from qubit_sim.cli import app
from qubit_sim.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys")


@pytest.fixture(scope="module")
def settled(tmp_path_factory: pytest.TempPathFactory, key_dir: Path) -> Path:
    """A day of the workplace site (PV, battery, chargers) without its feeder, settled daily."""
    loaded = load_scenario(
        ROOT / "scenarios" / "workplace_pv_battery.yaml", overrides={"grid": None}
    )
    out = tmp_path_factory.mktemp("run")
    qubit_sim.run(loaded, out=out, until_s=86400, plots=False, settle=False)
    result = runner.invoke(app, ["settle", str(out), "--period", "day", "--key-dir", str(key_dir)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def copy(settled: Path, tmp_path: Path) -> Path:
    return shutil.copytree(settled, tmp_path / "run")


def test_settle_prints_the_bill_and_the_verdict(settled: Path, key_dir: Path) -> None:
    result = runner.invoke(app, ["settle", str(settled), "--period", "day", "--key-dir",
                                 str(key_dir)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Site bill per day (EUR)" in result.output and "2025-06-02" in result.output
    assert "reconciliation: PASS" in result.output
    assert "10 invoices, 16 certificates, 1 ledger entries" in result.output
    manifest = json.loads((settled / "manifest.json").read_text())
    assert manifest["settlement"]["period"] == "day"
    assert manifest["settlement"]["reconciliation"] == "pass"
    assert (key_dir / "sit_workplace_pv_battery.key.pem").is_file()
    assert not list((settled / "settlement").rglob("*.key.pem"))  # the private key stays home


def test_settle_names_the_days_the_run_covers_in_part(settled: Path, key_dir: Path) -> None:
    """The run starts at 02:00 local time: 22 h of its first day, 2 h of the next."""
    result = runner.invoke(app, ["settle", str(settled), "--period", "day", "--key-dir",
                                 str(key_dir)])  # fmt: skip
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "2025-06-02* │" in output and "2025-06-03* │" in output
    assert (
        "* partly covered by the run: 2025-06-02 (22 of 24 h), 2025-06-03 (2 of 24 h). The "
        "demand charge of a partial period is billed in full (as the KPIs bill it), so a short "
        "run carries a whole period's demand charge."
    ) in output
    manifest = json.loads((settled / "manifest.json").read_text())
    assert manifest["settlement"]["partial_periods"] == ["2025-06-02", "2025-06-03"]


def test_a_clean_run_verifies(settled: Path) -> None:
    result = runner.invoke(app, ["verify", str(settled)])
    assert result.exit_code == 0, result.output
    assert "verified: 1 ledger entries, 16 certificates, 10 invoices" in result.output


def alter_one_byte(path: Path, line_number: int, field: str) -> str:
    """Change the last digit of ``field`` on ``line_number``; the line's id field is returned."""
    lines = path.read_bytes().split(b"\n")
    text = lines[line_number - 1].decode()
    match = re.search(rf'"{field}":"?[^,"]*?(\d)"?[,}}]', text)
    assert match is not None, (field, text)
    digit = match.start(1)
    lines[line_number - 1] = (
        text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1 :]
    ).encode()
    path.write_bytes(b"\n".join(lines))
    name = re.search(r'"(certificate_id|invoice_id|sequence)":"?([^,"]+)"?', text)
    assert name is not None
    return name.group(2)


@pytest.mark.parametrize(
    ("file", "line", "field", "kind"),
    [
        ("certificates.jsonl", 7, "wh_produced", "certificate"),
        ("invoices.jsonl", 4, "meter_stop_wh", "invoice"),
        ("invoices.jsonl", 2, "cost", "invoice"),
        ("ledger.jsonl", 1, "item_count", "ledger entry"),
    ],
)
def test_one_altered_byte_is_named(copy: Path, file: str, line: int, field: str, kind: str) -> None:
    item = alter_one_byte(copy / "settlement" / file, line, field)
    result = runner.invoke(app, ["verify", str(copy)])
    assert result.exit_code == 1
    first = result.output.split("TAMPERED:", 1)[1].splitlines()[0]
    assert f"{kind} {item} " in first and f"({file} line {line})" in first


def test_an_edited_bill_is_caught_by_its_digest(copy: Path) -> None:
    csv = copy / "settlement" / "bill_lines.csv"
    csv.write_text(csv.read_text().replace(",EUR,", ",USD,", 1))
    result = runner.invoke(app, ["verify", str(copy)])
    assert result.exit_code == 1
    assert "file bill_lines.csv does not match its digest in manifest.json" in result.output


def test_a_forged_settlement_under_another_key_is_refused(
    copy: Path, tmp_path: Path, settled: Path
) -> None:
    """Re-settling with another key is internally consistent, but not what the manifest says."""
    published = json.loads((settled / "manifest.json").read_text())["settlement"]
    result = runner.invoke(app, ["settle", str(copy), "--key-dir", str(tmp_path / "other")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["settlement"]["public_key_fingerprint"] = published["public_key_fingerprint"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["verify", str(copy)])
    assert result.exit_code == 1 and "is not the published" in result.output


def test_settle_exits_1_when_reconciliation_fails(copy: Path, key_dir: Path) -> None:
    sessions = pd.read_parquet(copy / "sessions.parquet")
    sessions.loc[sessions["unplugged_s"] >= 0, "meter_stop_wh"] += 5
    sessions.to_parquet(copy / "sessions.parquet")
    result = runner.invoke(app, ["settle", str(copy), "--key-dir", str(key_dir)])
    assert result.exit_code == 1
    assert "reconciliation: FAIL (charging_sessions)" in result.output


def test_settle_and_verify_reject_bad_input(tmp_path: Path, key_dir: Path, settled: Path) -> None:
    result = runner.invoke(app, ["settle", str(settled), "--period", "year"])
    assert result.exit_code == 2 and "'year' is not one of month, week, day" in result.output
    result = runner.invoke(app, ["settle", str(tmp_path / "none"), "--key-dir", str(key_dir)])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["verify", str(tmp_path / "none")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_verify_exits_non_zero_from_the_shell(copy: Path) -> None:
    item = alter_one_byte(copy / "settlement" / "ledger.jsonl", 1, "certificate_count")
    done = subprocess.run(
        [sys.executable, "-m", "qubit_sim", "verify", str(copy)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert f"TAMPERED: ledger entry {item} " in done.stdout.replace("\n", " ")

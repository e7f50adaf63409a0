"""Settlement folders: a clean one verifies; any one changed byte is caught and named."""

from __future__ import annotations

import json
import random
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qubit_sim.stack.settle import (
    SettlementError,
    VerifyReport,
    daily_period,
    monthly_period,
    verify_settlement,
    write_settlement_artifacts,
)

FILES = [
    "certificates.jsonl",
    "invoices.jsonl",
    "ledger.jsonl",
    "keys/site_public.pem",
    "keys/site_public.hex",
]
CERT_LINE = 5  # a certificate of the first day
INVOICE_LINE = 3
LEDGER_LINE = 2


@pytest.fixture(scope="module")
def clean(tmp_path_factory, items, site_key):
    folder = tmp_path_factory.mktemp("results") / "settlement"
    summary = write_settlement_artifacts(folder, *items, daily_period, site_key)
    return folder, summary


@pytest.fixture
def copy(clean, tmp_path) -> Path:
    target = tmp_path / "settlement"
    shutil.copytree(clean[0], target)
    return target


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _bump(char: str) -> str:
    if char.isdigit():
        return str((int(char) + 1) % 10)
    return chr(ord(char) - 1) if char in "fFzZ" else chr(ord(char) + 1)


def alter_one_byte(line: bytes, field_path: tuple[str, ...]) -> bytes:
    """``line`` with one byte of the value of ``field_path`` changed (the last alphanumeric)."""
    text = line.decode()
    position = 0
    for key in field_path:
        position = text.index(f'"{key}":', position) + len(key) + 3
    if text[position] == "[":
        position += 1
    if text[position] == '"':
        end = text.index('"', position + 1)
    else:
        end = position
        while text[end] not in ",}]":
            end += 1
    offset = max(i for i in range(position, end) if text[i].isalnum())
    altered = text[:offset] + _bump(text[offset]) + text[offset + 1 :]
    assert len(altered.encode()) == len(line) and altered != text
    return altered.encode()


def tamper(folder: Path, name: str, line_no: int, field_path: tuple[str, ...]) -> bytes:
    path = folder / name
    lines = lines_of(path)
    lines[line_no - 1] = alter_one_byte(lines[line_no - 1], field_path)
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return lines[line_no - 1]


def test_clean_settlement_verifies(clean, items) -> None:
    folder, summary = clean
    report = verify_settlement(
        folder,
        expected_fingerprint=summary.public_key_fingerprint,
        expected_ledger_head=summary.ledger_head,
    )
    assert report.ok, report.first_failure
    assert report.findings == () and report.first is None
    assert (report.certificates, report.invoices) == (len(items[0]), len(items[1]))
    assert report.ledger_entries == len(summary.periods) == 3
    assert summary.periods == ("2024-06-01", "2024-06-02", "2024-06-03")
    assert report.public_key_fingerprint == summary.public_key_fingerprint
    assert report.ledger_head == summary.ledger_head
    assert str(report).startswith("settlement ok")
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True


def test_layout_and_no_private_key(clean, site_key) -> None:
    folder, summary = clean
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == sorted(
        FILES
    )
    for path in folder.rglob("*"):
        if path.is_file():
            assert b"PRIVATE" not in path.read_bytes()
    assert summary.to_manifest()["public_key_fingerprint"] == site_key.fingerprint
    ledger = [json.loads(line) for line in lines_of(folder / "ledger.jsonl")]
    assert sum(entry["item_count"] for entry in ledger) == len(lines_of(folder / "certificates.jsonl")) + len(lines_of(folder / "invoices.jsonl"))  # fmt: skip


CERT_FIELDS = {
    "type": "is unreadable",
    "certificate_id": "signature invalid",
    "site_id": "signature invalid",
    "asset_id": "signature invalid",
    "technology": "signature invalid",
    "period_start": "signature invalid",
    "period_end": "signature invalid",
    "wh_produced": "signature invalid",
    "wh_consumed_on_site": "signature invalid",
    "wh_exported": "signature invalid",
    "carbon_intensity_g_per_kwh": "signature invalid",
    "issued_at": "signature invalid",
    "public_key_id": "signed by key_",
    "signature": "signature invalid",
}
INVOICE_FIELDS = {
    "type": "is unreadable",
    "invoice_id": "signature invalid",
    "site_id": "signature invalid",
    "session_id": "signature invalid",
    "charger_id": "signature invalid",
    "vehicle_id": "signature invalid",
    "started_at": "signature invalid",
    "stopped_at": "signature invalid",
    "meter_start_wh": "signature invalid",
    "meter_stop_wh": "signature invalid",
    "wh_delivered": "signature invalid",
    "kwh": "signature invalid",
    "price_per_kwh": "signature invalid",
    "cost": "signature invalid",
    "currency": "signature invalid",
    "issued_at": "signature invalid",
    "public_key_id": "signed by key_",
    "signature": "signature invalid",
}
INCLUSION_FIELDS = {
    "period": "merkle inclusion",
    "index": "merkle inclusion invalid",
    "tree_size": "merkle inclusion tree size",
    "path": "merkle inclusion invalid",
}
ITEM_CASES = (
    [("certificates.jsonl", CERT_LINE, (f,), p) for f, p in CERT_FIELDS.items()]
    + [("certificates.jsonl", CERT_LINE, ("merkle_inclusion", f), p)
       for f, p in INCLUSION_FIELDS.items()]
    + [("invoices.jsonl", INVOICE_LINE, (f,), p) for f, p in INVOICE_FIELDS.items()]
    + [("invoices.jsonl", INVOICE_LINE, ("merkle_inclusion", f), p)
       for f, p in INCLUSION_FIELDS.items()]
)  # fmt: skip


@pytest.mark.parametrize(("name", "line_no", "field_path", "problem"), ITEM_CASES)
def test_one_changed_byte_in_an_item_is_named(
    copy: Path, name: str, line_no: int, field_path: tuple[str, ...], problem: str
) -> None:
    original = json.loads(lines_of(copy / name)[line_no - 1])
    assert original[field_path[0]] is not None
    altered = json.loads(tamper(copy, name, line_no, field_path))
    report = verify_settlement(copy)
    assert not report.ok
    first = report.first
    kind = "certificate" if name.startswith("cert") else "invoice"
    id_field = f"{kind}_id"
    assert (first.kind, first.file, first.line) == (kind, name, line_no)
    assert first.item_id == altered[id_field]
    if field_path != (id_field,):
        assert first.item_id == original[id_field]
    assert problem in first.problem
    assert report.first_failure == f"{kind} {first.item_id} {first.problem}"


LEDGER_FIELDS = {
    "type": "is unreadable",
    "sequence": "sequence is 3, expected 2",
    "site_id": "entry hash mismatch",
    "period": "entry hash mismatch",
    "merkle_root": "entry hash mismatch",
    "item_count": "entry hash mismatch",
    "certificate_count": "entry hash mismatch",
    "invoice_count": "entry hash mismatch",
    "prev_entry_hash": "prev hash mismatch",
    "entry_hash": "entry hash mismatch",
    "public_key_id": "entry hash mismatch",
    "signature": "signature invalid",
}


@pytest.mark.parametrize(("field", "problem"), LEDGER_FIELDS.items())
def test_one_changed_byte_in_a_ledger_entry_is_named(copy: Path, field: str, problem: str) -> None:
    tamper(copy, "ledger.jsonl", LEDGER_LINE, (field,))
    report = verify_settlement(copy)
    assert not report.ok
    assert (report.first.kind, report.first.item_id) == ("ledger entry", str(LEDGER_LINE))
    assert problem in report.first.problem
    assert report.first_failure.startswith(f"ledger entry {LEDGER_LINE} ")


def test_first_entry_prev_hash_must_be_genesis(copy: Path) -> None:
    tamper(copy, "ledger.jsonl", 1, ("prev_entry_hash",))
    assert verify_settlement(copy).first_failure == "ledger entry 1 prev hash mismatch"


@pytest.mark.parametrize("name", ["keys/site_public.pem", "keys/site_public.hex"])
def test_changed_public_key_file_is_named(copy: Path, name: str) -> None:
    path = copy / name
    data = bytearray(path.read_bytes())
    data[40] = ord(_bump(chr(data[40])))
    path.write_bytes(bytes(data))
    report = verify_settlement(copy)
    assert not report.ok
    assert report.first.kind == "public key"


def test_dropped_item_is_caught_by_its_ledger_entry(copy: Path) -> None:
    path = copy / "invoices.jsonl"
    lines = lines_of(path)
    period = json.loads(lines[INVOICE_LINE - 1])["merkle_inclusion"]["period"]
    del lines[INVOICE_LINE - 1]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    report = verify_settlement(copy)
    ledger = [json.loads(line) for line in lines_of(copy / "ledger.jsonl")]
    entry = next(e for e in ledger if e["period"] == period)
    count = entry["item_count"]
    assert report.first.kind == "ledger entry"
    assert report.first.item_id == str(entry["sequence"])
    assert f"commits {count} items, {count - 1} found" in report.first.problem


def test_duplicated_item_is_caught(copy: Path) -> None:
    path = copy / "certificates.jsonl"
    lines = lines_of(path)
    lines.insert(CERT_LINE, lines[CERT_LINE - 1])
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    report = verify_settlement(copy)
    assert report.first.line == CERT_LINE + 1
    assert "appears twice" in report.first.problem


def test_cut_off_last_period_needs_the_published_head(copy: Path, clean) -> None:
    summary = clean[1]
    last = summary.periods[-1]
    ledger = copy / "ledger.jsonl"
    ledger.write_bytes(b"".join(line + b"\n" for line in lines_of(ledger)[:-1]))
    for name in ("certificates.jsonl", "invoices.jsonl"):
        kept = [
            line
            for line in lines_of(copy / name)
            if json.loads(line)["merkle_inclusion"]["period"] != last
        ]
        (copy / name).write_bytes(b"".join(line + b"\n" for line in kept))
    # Internally consistent: only the published head reveals the cut.
    assert verify_settlement(copy).ok
    report = verify_settlement(copy, expected_ledger_head=summary.ledger_head)
    assert report.first_failure.startswith("ledger head ")


def test_re_signed_folder_needs_the_published_fingerprint(tmp_path: Path, clean, factory) -> None:
    impostor = factory.make_key(seed=99)
    folder = tmp_path / "settlement"
    write_settlement_artifacts(folder, *factory.make_items(impostor), daily_period, impostor)
    assert verify_settlement(folder).ok
    report = verify_settlement(folder, expected_fingerprint=clean[1].public_key_fingerprint)
    assert report.first.kind == "public key"
    assert "is not the published" in report.first.problem


@pytest.mark.parametrize("name", FILES)
def test_missing_file_is_named(copy: Path, name: str) -> None:
    (copy / name).unlink()
    report = verify_settlement(copy)
    assert not report.ok
    assert name in str(report.first)


def test_not_a_folder(tmp_path: Path) -> None:
    report = verify_settlement(tmp_path / "nowhere")
    assert not report.ok and report.first.kind == "file"


@pytest.fixture(scope="module")
def clean_bytes(clean) -> dict[str, bytes]:
    return {name: (clean[0] / name).read_bytes() for name in FILES}


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_byte_change_anywhere_is_detected(clean_bytes, data) -> None:
    name = data.draw(st.sampled_from(FILES))
    original = clean_bytes[name]
    position = data.draw(st.integers(0, len(original) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]))
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "keys").mkdir()
        for other, content in clean_bytes.items():
            (folder / other).write_bytes(content)
        altered = bytearray(original)
        altered[position] = value
        (folder / name).write_bytes(bytes(altered))
        report = verify_settlement(folder)
    assert not report.ok
    first = report.first
    if name.endswith(".jsonl"):
        line_no = original.count(b"\n", 0, position) + 1
        assert first.file == name
        assert first.line in (line_no, None)  # None: the file's final newline was altered
    else:
        assert first.kind == "public key"


def test_same_inputs_give_the_same_bytes(tmp_path: Path, items, factory) -> None:
    key = factory.make_key()
    certificates, invoices = factory.make_items(key)  # rebuilt from scratch
    rng = random.Random(3)
    shuffled_certs = rng.sample(certificates, len(certificates))
    shuffled_invoices = rng.sample(invoices, len(invoices))
    one = write_settlement_artifacts(tmp_path / "a", *items, daily_period, key)
    two = write_settlement_artifacts(
        tmp_path / "b", shuffled_certs, shuffled_invoices, daily_period, key
    )
    assert one.ledger_head == two.ledger_head
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_monthly_periods_give_one_entry(tmp_path: Path, items, site_key) -> None:
    summary = write_settlement_artifacts(tmp_path, *items, monthly_period, site_key)
    assert summary.periods == ("2024-06",)
    report = verify_settlement(tmp_path)
    assert report.ok and report.ledger_entries == 1


def test_writer_refuses_to_replace_or_mix_keys(tmp_path: Path, items, site_key, factory) -> None:
    write_settlement_artifacts(tmp_path, *items, daily_period, site_key)
    with pytest.raises(SettlementError, match="fresh results folder"):
        write_settlement_artifacts(tmp_path, *items, daily_period, site_key)
    certificates, invoices = items
    summary = write_settlement_artifacts(
        tmp_path, certificates[:3], [], daily_period, site_key, overwrite=True
    )
    assert summary.certificate_count == 3 and verify_settlement(tmp_path).ok
    other = factory.make_key(seed=5)
    with pytest.raises(SettlementError, match="signed by"):
        write_settlement_artifacts(tmp_path / "x", certificates, invoices, daily_period, other)
    with pytest.raises(SettlementError, match="appears twice"):
        write_settlement_artifacts(tmp_path / "y", certificates * 2, [], daily_period, site_key)


def test_report_type(copy: Path) -> None:
    tamper(copy, "invoices.jsonl", INVOICE_LINE, ("cost",))
    report = verify_settlement(copy)
    assert isinstance(report, VerifyReport)
    assert re.match(r"settlement NOT ok \(\d+ findings\); first: invoice inv_", str(report))

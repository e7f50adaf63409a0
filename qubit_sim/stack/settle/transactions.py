"""The CSMS's transaction records, as a table a run writes and settlement invoices from.

A ``wire`` run ends by writing ``<results>/csms_transactions.parquet``: one row per transaction
the stack's CSMS received over OCPP (1.6 StartTransaction/StopTransaction, 2.0.1
TransactionEvent), with the registers and meter values as they arrived — after reconnects and
re-sent offline queues. Columns (:data:`TRANSACTION_COLUMNS`):

==================== ====================================================================
``transaction_id``   transaction id on the wire (1.6: given by the CSMS; 2.0.1: by the CP)
``charge_point``     charge point identity (the charger id)
``connector``        connector (EVSE) number
``id_tag``           token the transaction was started with
``start_time``       ISO 8601 UTC start, as the charge point stamped it
``stop_time``        ISO 8601 UTC stop; empty while the transaction is still running
``start_s``          start, simulation time [s]
``stop_s``           stop, simulation time [s]; -1 while running
``meter_start_wh``   energy register at the start [Wh]; NaN if the CSMS never got one
``meter_stop_wh``    energy register at the stop [Wh]; NaN while running
``energy_wh``        register difference [Wh]; while running, up to the last meter value
``n_meter_values``   meter values received (distinct timestamps)
``stop_reason``      reason the charge point gave; empty while running
``offline_messages`` 2.0.1 messages flagged as generated while offline
==================== ====================================================================
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from qubit_sim.protocols.ocpp_csms_state import TransactionRecord
from qubit_sim.stack.settle.errors import SettlementError

__all__ = [
    "CSMS_TRANSACTIONS_FILE",
    "TRANSACTION_COLUMNS",
    "read_transactions",
    "transaction_table",
    "write_transactions",
]

CSMS_TRANSACTIONS_FILE = "csms_transactions.parquet"
TRANSACTION_COLUMNS = (
    "transaction_id",
    "charge_point",
    "connector",
    "id_tag",
    "start_time",
    "stop_time",
    "start_s",
    "stop_s",
    "meter_start_wh",
    "meter_stop_wh",
    "energy_wh",
    "n_meter_values",
    "stop_reason",
    "offline_messages",
)


def _sim_s(iso: str, start_utc: datetime) -> int:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(round((moment - start_utc).total_seconds()))


def _wh(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def transaction_table(records: Iterable[TransactionRecord], start_utc: datetime) -> pd.DataFrame:
    """The CSMS's transactions as a table (module doc), ordered by start, then charge point.

    Args:
        records: The CSMS's transaction records (``csms.state.transactions.values()``).
        start_utc: UTC instant of simulation time 0 (timezone-aware).
    """
    rows = []
    for tx in records:
        energy = tx.energy_wh
        rows.append(
            {
                "transaction_id": str(tx.transaction_id),
                "charge_point": str(tx.cp_id),
                "connector": int(tx.connector),
                "id_tag": str(tx.id_tag),
                "start_time": tx.start_time,
                "stop_time": tx.stop_time or "",
                "start_s": _sim_s(tx.start_time, start_utc),
                "stop_s": -1 if tx.stop_time is None else _sim_s(tx.stop_time, start_utc),
                "meter_start_wh": _wh(tx.meter_start_wh),
                "meter_stop_wh": _wh(tx.meter_stop_wh),
                "energy_wh": _wh(energy),
                "n_meter_values": len(tx.samples),
                "stop_reason": tx.stop_reason or "",
                "offline_messages": int(tx.offline_messages),
            }
        )
    if not rows:
        return _empty()
    table = pd.DataFrame(rows, columns=list(TRANSACTION_COLUMNS))
    return table.sort_values(["start_s", "charge_point", "connector"], ignore_index=True)


def _empty() -> pd.DataFrame:
    table = pd.DataFrame({name: [] for name in TRANSACTION_COLUMNS})
    for name in ("connector", "start_s", "stop_s", "n_meter_values", "offline_messages"):
        table[name] = table[name].astype(np.int64)
    for name in ("meter_start_wh", "meter_stop_wh", "energy_wh"):
        table[name] = table[name].astype(float)
    for name in ("transaction_id", "charge_point", "id_tag", "start_time", "stop_time"):
        table[name] = table[name].astype(object)
    table["stop_reason"] = table["stop_reason"].astype(object)
    return table


def write_transactions(
    folder: str | os.PathLike[str], records: Iterable[TransactionRecord], start_utc: datetime
) -> Path:
    """Write ``<folder>/csms_transactions.parquet``; returns its path."""
    path = Path(folder) / CSMS_TRANSACTIONS_FILE
    transaction_table(records, start_utc).to_parquet(path, index=False)
    return path


def read_transactions(folder: str | os.PathLike[str]) -> pd.DataFrame | None:
    """The CSMS transactions of a results folder, or None when the run wrote none (``fast``).

    Raises:
        SettlementError: an unreadable file, one lacking a column, or a transaction id that
            two charge points share (invoices need one id per transaction).
    """
    path = Path(folder) / CSMS_TRANSACTIONS_FILE
    if not path.is_file():
        return None
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise SettlementError(f"cannot read {path}: {exc}") from exc
    missing = [name for name in TRANSACTION_COLUMNS if name not in table]
    if missing:
        raise SettlementError(
            f"{path} lacks columns {missing}; re-run the scenario with this qubit-sim version"
        )
    ids = table["transaction_id"].astype(str)
    repeated = sorted(set(ids[ids.duplicated()]))
    if repeated:
        raise SettlementError(
            f"{path}: transaction ids {repeated[:3]} occur more than once; each transaction "
            "needs its own id to be invoiced"
        )
    return table

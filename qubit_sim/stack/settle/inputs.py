"""What settlement reads from a run's results folder, and where site keys live.

A results folder (see :mod:`qubit_sim.core.results`) gives settlement the site facts the run
recorded in ``manifest.json`` (site, time zone, tariff: :mod:`~qubit_sim.stack.settle.context`),
the per-step time series (``timeseries.parquet``), the charging sessions with their meter
registers (``sessions.parquet``) and, from a ``wire`` run, the CSMS's transaction records
(``csms_transactions.parquet``: :mod:`~qubit_sim.stack.settle.transactions`). A run that stopped
early is settled as far as it got: the time series then simply has fewer rows.

A tariff priced by a price series is billed with the price of every step the run recorded
(``price_per_kwh``, ``export_price_per_kwh``): the prices its KPIs were computed with.

Per-device columns are found by name (load convention, [kW]): ``load_<id>_p_kw``,
``charger_<id>_p_kw``, ``battery_<id>_p_kw`` and ``pv_<id>_p_kw``. Only the columns settlement
uses are read; a feeder run records many more (bus voltages, loadings).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qubit_sim.core.price_series import PriceSeries, TariffError
from qubit_sim.stack.settle.context import (
    PRICE_COLUMNS,
    SiteContext,
    context_from_manifest,
    recorded_price_series,
)
from qubit_sim.stack.settle.errors import SettlementError
from qubit_sim.stack.settle.transactions import read_transactions

__all__ = [
    "BACKGROUND_COLUMN",
    "DEVICE_KINDS",
    "KEY_DIR_ENV",
    "RunInputs",
    "default_key_dir",
    "read_run_inputs",
    "site_id_of",
]

KEY_DIR_ENV = "QUBIT_SIM_KEY_DIR"
DEVICE_KINDS = ("load", "charger", "battery", "pv")
_REQUIRED_COLUMNS = ("time", "grid_import_kw", "grid_export_kw", "carbon_g_per_kwh")
BACKGROUND_COLUMN = "grid_background_kw"
# Read when present: the feeder balance of reconciliation needs them.
_OPTIONAL_COLUMNS = ("grid_ext_p_kw", "grid_losses_kw", BACKGROUND_COLUMN)
_SESSION_COLUMNS = (
    "session_id",
    "vehicle_id",
    "charger_id",
    "plugged_s",
    "unplugged_s",
    "rejected",
    "meter_start_wh",
    "meter_stop_wh",
)


def default_key_dir() -> Path:
    """Folder of site signing keys: ``$QUBIT_SIM_KEY_DIR``, else ``<config home>/qubit-sim/keys``.

    The config home is ``$XDG_CONFIG_HOME`` or ``~/.config``. Keys stay outside results folders,
    which are meant to be shared.
    """
    configured = os.environ.get(KEY_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "qubit-sim" / "keys"


def site_id_of(site_name: str) -> str:
    """The Qubit site id (``sit_<name>``) a scenario's site settles and signs as."""
    return f"sit_{site_name}"


@dataclass(frozen=True)
class RunInputs:
    """One run's results, as settlement needs them.

    Attributes:
        folder: The results folder.
        manifest: ``manifest.json`` as a dict.
        context: Site facts from the manifest (name, time zone, tariff, driver price).
        site_id: Site id the settlement is signed for.
        tz: Site IANA time zone (billing calendar, tariff windows).
        start: UTC instant of simulation time 0.
        step_s: Step length [s].
        times: UTC start of every recorded step.
        frame: The time series (one row per recorded step).
        sessions: The charging sessions (empty frame when the site has none).
        transactions: The CSMS's transaction records of a ``wire`` run
            (:func:`~qubit_sim.stack.settle.transactions.read_transactions`); None otherwise.
    """

    folder: Path
    manifest: dict[str, Any]
    context: SiteContext
    site_id: str
    tz: str
    start: datetime
    step_s: int
    times: pd.DatetimeIndex
    frame: pd.DataFrame
    sessions: pd.DataFrame
    transactions: pd.DataFrame | None = None

    @property
    def n_steps(self) -> int:
        """Number of recorded steps."""
        return len(self.frame)

    @property
    def hours_per_step(self) -> float:
        """Step length [h]."""
        return self.step_s / 3600.0

    def column(self, name: str) -> np.ndarray:
        """A time-series column as float [unit of the column]; zeros if the run lacks it."""
        if name not in self.frame:
            return np.zeros(self.n_steps)
        return self.frame[name].to_numpy(dtype=float)

    def devices(self, kind: str) -> dict[str, np.ndarray]:
        """Per-device power [kW, load convention] of one kind, by device id, sorted by id."""
        if kind not in DEVICE_KINDS:
            raise SettlementError(f"device kind {kind!r} is not one of {DEVICE_KINDS}")
        pattern = re.compile(rf"^{kind}_(.+)_p_kw$")
        found = {}
        for name in self.frame.columns:
            match = pattern.match(str(name))
            if match:
                found[match.group(1)] = self.frame[name].to_numpy(dtype=float)
        return dict(sorted(found.items()))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettlementError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SettlementError(f"{path} is not a JSON object")
    return data


def _read_sessions(path: Path) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame({name: [] for name in _SESSION_COLUMNS})
    sessions = pd.read_parquet(path)
    if sessions.empty:
        return pd.DataFrame({name: [] for name in _SESSION_COLUMNS})
    missing = [name for name in _SESSION_COLUMNS if name not in sessions]
    if missing:
        raise SettlementError(
            f"{path} lacks columns {missing}; re-run the scenario with this qubit-sim version"
        )
    return sessions


def _settled_columns(path: Path, prices: bool) -> list[str]:
    """The columns settlement reads: a feeder run records many more (bus voltages, ...)."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    wanted = (
        set(_REQUIRED_COLUMNS) | set(_OPTIONAL_COLUMNS) | (set(PRICE_COLUMNS) if prices else set())
    )
    device = re.compile(rf"^({'|'.join(DEVICE_KINDS)})_.+_p_kw$")
    return [name for name in names if name in wanted or device.match(name)]


def _price_columns(entry: dict[str, Any]) -> tuple[str, ...]:
    return PRICE_COLUMNS if entry.get("export_prices") else PRICE_COLUMNS[:1]


def _with_recorded_prices(
    manifest: dict[str, Any],
    entry: dict[str, Any],
    frame: pd.DataFrame,
    times: pd.DatetimeIndex,
    series_path: Path,
) -> SiteContext:
    """The site context with the tariff's price series made of the prices the run recorded."""
    step_s = manifest.get("step_s")
    if not isinstance(step_s, int) or isinstance(step_s, bool) or step_s <= 0:
        context_from_manifest(manifest)  # raises, naming the bad step_s
        raise SettlementError(f"manifest.json step_s {step_s!r} is not a positive integer")
    columns = [frame[name].to_numpy(dtype=float) for name in _price_columns(entry)]
    try:
        prices = PriceSeries.from_steps(
            times,
            step_s,
            columns[0],
            columns[1] if len(columns) > 1 else None,
            source=f"{entry.get('source', 'price series')} as recorded in {series_path.name}",
        )
    except TariffError as exc:
        raise SettlementError(str(exc)) from exc
    return context_from_manifest(manifest, prices)


def read_run_inputs(results_dir: str | os.PathLike[str]) -> RunInputs:
    """Read a results folder for settlement.

    Raises:
        SettlementError: if the folder, its manifest or time series is missing or unreadable,
            the manifest lacks the site facts, or the time series lacks a column settlement
            needs.
    """
    folder = Path(results_dir)
    if not folder.is_dir():
        raise SettlementError(f"results folder {folder} does not exist")
    manifest = _read_json(folder / "manifest.json")
    try:
        entry = recorded_price_series(manifest)
        # a tariff priced by a series needs the recorded prices, read below, to be complete
        context = context_from_manifest(manifest) if entry is None else None
    except SettlementError as exc:
        raise SettlementError(f"cannot settle {folder}: {exc}") from exc
    series_path = folder / "timeseries.parquet"
    if not series_path.is_file():
        raise SettlementError(
            f"{folder} has no timeseries.parquet: the run recorded no step, nothing to settle"
        )
    frame = pd.read_parquet(series_path, columns=_settled_columns(series_path, entry is not None))
    required = _REQUIRED_COLUMNS + (_price_columns(entry) if entry is not None else ())
    missing = [name for name in required if name not in frame]
    if missing:
        raise SettlementError(f"{series_path} lacks columns {missing}; cannot settle this run")
    times = pd.DatetimeIndex(frame["time"])
    times = times.tz_localize("UTC") if times.tz is None else times.tz_convert("UTC")
    if context is None:
        assert entry is not None
        try:
            context = _with_recorded_prices(manifest, entry, frame, times, series_path)
        except SettlementError as exc:
            raise SettlementError(f"cannot settle {folder}: {exc}") from exc
    step_s = context.step_s
    if len(times) > 1 and not (np.diff(times.as_unit("s").asi8) == step_s).all():
        raise SettlementError(
            f"{series_path} is not a regular series of {step_s} s steps; cannot settle it"
        )
    return RunInputs(
        folder=folder,
        manifest=manifest,
        context=context,
        site_id=site_id_of(context.site_name),
        tz=context.tz,
        start=context.start,
        step_s=step_s,
        times=times,
        frame=frame,
        sessions=_read_sessions(folder / "sessions.parquet"),
        transactions=read_transactions(folder),
    )

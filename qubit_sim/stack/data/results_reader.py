"""Read a qubit-sim results folder: manifest, the scenario as run, and the time series.

The scenario is read as the plain YAML mapping the run wrote (templates already applied), with the
defaults of ``docs/scenario-format.md`` for keys it leaves out. Device ids are numbered as the
site builder numbers them (a group of ``count`` devices named ``id`` becomes ``id1``, ``id2``, ...;
unnamed devices take ``ac``/``dc``/``battery``/``pv``/``load`` + the next free number) and are
checked against the per-device columns of ``timeseries.parquet``, which are authoritative.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from qubit_sim.core.naming import device_names
from qubit_sim.stack.data.errors import ExportError

__all__ = ["DEVICE_KINDS", "Device", "RunData", "read_results"]

DEVICE_KINDS = ("charger", "battery", "pv", "load")
_SECTIONS = {"charger": "chargers", "battery": "batteries", "pv": "pv", "load": "loads"}
_DEFAULT_LOCATION = {"lat": 52.37, "lon": 4.90, "tz": "Europe/Amsterdam"}


@dataclass(frozen=True)
class Device:
    """One simulated device.

    Attributes:
        kind: ``"charger"``, ``"battery"``, ``"pv"`` or ``"load"``.
        device_id: Id used in the time-series columns (``charger_<id>_p_kw``).
        spec: The scenario entry of its group (empty when the scenario does not describe it).
    """

    kind: str
    device_id: str
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunData:
    """Everything the exporter needs from one results folder."""

    folder: Path
    manifest: dict[str, Any]
    scenario: dict[str, Any]
    frame: pd.DataFrame
    step_s: int
    devices: tuple[Device, ...]

    @property
    def site(self) -> dict[str, Any]:
        """The scenario's ``site`` section."""
        return dict(self.scenario.get("site") or {})

    @property
    def location(self) -> dict[str, Any]:
        """``lat``, ``lon``, ``tz`` with the scenario defaults filled in."""
        return {**_DEFAULT_LOCATION, **(self.site.get("location") or {})}

    @property
    def start(self) -> pd.Timestamp:
        """UTC instant of the first recorded step."""
        return pd.Timestamp(self.frame["time"].iloc[0]).tz_convert("UTC")

    @property
    def duration_s(self) -> int:
        """Simulated time covered by the recorded steps [s]."""
        return len(self.frame) * self.step_s


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(
            f"{path} does not exist; pass a results folder written by 'qubit-sim run'"
        ) from None
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path} must hold a JSON object")
    return data


def _read_scenario(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(
            f"{path} does not exist; the results folder must hold the scenario as run"
        ) from None
    except yaml.YAMLError as exc:
        raise ExportError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("site"), dict):
        raise ExportError(f"{path} has no 'site' section; is it a qubit-sim scenario?")
    if not data["site"].get("name"):
        raise ExportError(f"{path}: site.name is missing")
    return data


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise ExportError(f"{path} does not exist; the run recorded no time series")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
        raise ExportError(f"{path} cannot be read as Parquet: {exc}") from None
    missing = {"time", "t_s", "site_p_kw"} - set(frame.columns)
    if missing:
        raise ExportError(
            f"{path} lacks column(s) {sorted(missing)}; found {list(frame.columns)[:8]}"
        )
    if frame.empty:
        raise ExportError(f"{path} has no rows: nothing was simulated")
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def _step_s(manifest: dict[str, Any], frame: pd.DataFrame) -> int:
    step = manifest.get("step_s")
    if isinstance(step, int) and step > 0:
        return step
    if len(frame) > 1:
        return int(frame["t_s"].iloc[1] - frame["t_s"].iloc[0])
    raise ExportError("cannot tell the step: manifest.json has no step_s and there is one row")


def _planned_ids(scenario: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, id, spec) in the order and numbering of the site builder."""
    assets = scenario.get("assets") or {}
    groups = [
        (kind, dict(entry)) for kind in DEVICE_KINDS for entry in assets.get(_SECTIONS[kind]) or []
    ]
    names = device_names(
        [(_prefix(kind, entry), entry.get("id"), _size(kind, entry)) for kind, entry in groups]
    )
    return [
        (kind, name, entry)
        for (kind, entry), ids in zip(groups, names, strict=True)
        for name in ids
    ]


def _prefix(kind: str, entry: dict[str, Any]) -> str:
    if kind == "charger":
        return "dc" if entry.get("kind") == "dc" else "ac"
    return kind


def _size(kind: str, entry: dict[str, Any]) -> int:
    if kind == "charger":
        return int(entry.get("count", 1)) * int(entry.get("connectors", 1))
    return 1 if kind == "battery" else int(entry.get("count", 1))


def _devices(scenario: dict[str, Any], columns: list[str]) -> tuple[Device, ...]:
    specs = {(kind, name): spec for kind, name, spec in _planned_ids(scenario)}
    devices = []
    for kind in DEVICE_KINDS:
        pattern = re.compile(rf"{kind}_(.+)_p_kw")
        for column in columns:
            match = pattern.fullmatch(column)
            if match:
                name = match.group(1)
                devices.append(Device(kind, name, specs.get((kind, name), {})))
    return tuple(devices)


def read_results(folder: str | Path) -> RunData:
    """Read a results folder.

    Raises:
        ExportError: a missing or unreadable ``manifest.json``, ``scenario.yaml`` or
            ``timeseries.parquet``, naming the file and the fix.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ExportError(f"results folder {root} does not exist; run a scenario first")
    manifest = _read_json(root / "manifest.json")
    scenario = _read_scenario(root / "scenario.yaml")
    frame = _read_frame(root / "timeseries.parquet")
    return RunData(
        folder=root,
        manifest=manifest,
        scenario=scenario,
        frame=frame,
        step_s=_step_s(manifest, frame),
        devices=_devices(scenario, list(frame.columns)),
    )

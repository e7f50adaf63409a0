"""The results folder of a run and its Python handle, :class:`RunResult`.

Layout (DESIGN §8)::

    <out>/manifest.json        scenario, seed, versions, git revision, mode, timings, status
    <out>/scenario.yaml        the scenario as run (templates applied)
    <out>/timeseries.parquet   one row per step, a column per quantity (units in the names)
    <out>/kpis.json            key performance indicators
    <out>/events.jsonl         EV plug/unplug/rejection and (with the stack) commands, states
    <out>/sessions.parquet     every EV session: arrival, departure, charger, energy needed/delivered
    <out>/plots/*.png          site power, battery SOC, chargers, feeder voltage
    <out>/settlement/          bills, signed invoices and certificates, ledger, reconciliation
"""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RunResult", "git_revision", "package_versions", "write_json"]

_PACKAGES = (
    "numpy",
    "pandas",
    "scipy",
    "simpy",
    "mesa",
    "pandapower",
    "simbench",
    "pvlib",
    "pydantic",
    "pyarrow",
    "cvxpy",
    "ocpp",
    "pymodbus",
    "gymnasium",
)


def package_versions() -> dict[str, str]:
    """Versions of Python and the main dependencies."""
    versions = {"python": platform.python_version()}
    for name in ("qubit-sim", *_PACKAGES):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_revision(path: Path | None = None) -> str | None:
    """The git commit of the project checkout, with ``-dirty`` when it has local changes."""
    where = path or Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (write to a temporary file, then rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        json.dumps(data, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8"
    )
    tmp.replace(path)


@dataclass
class RunResult:
    """Handle on a finished (or failed) run's results folder."""

    out_dir: Path
    kpis: dict[str, Any]
    manifest: dict[str, Any]
    plots: list[Path] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.manifest.get("status") == "complete"

    def timeseries(self) -> pd.DataFrame:
        """The time series as a pandas DataFrame."""
        import pandas as pd

        return pd.read_parquet(self.out_dir / "timeseries.parquet")

    def sessions(self) -> pd.DataFrame:
        """Every EV session of the run as a pandas DataFrame."""
        import pandas as pd

        return pd.read_parquet(self.out_dir / "sessions.parquet")

    def events(self) -> list[dict[str, Any]]:
        path = self.out_dir / "events.jsonl"
        if not path.exists():
            return []
        with path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    @classmethod
    def load(cls, out_dir: str | Path) -> RunResult:
        """Open an existing results folder."""
        folder = Path(out_dir)
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        kpis_path = folder / "kpis.json"
        kpis = json.loads(kpis_path.read_text(encoding="utf-8")) if kpis_path.exists() else {}
        plots = sorted((folder / "plots").glob("*.png")) if (folder / "plots").is_dir() else []
        return cls(folder, kpis, manifest, plots)

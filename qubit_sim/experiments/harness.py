"""Compare controllers over scenarios x seeds: plan the runs, run them, collect one row per run.

Every controller of a scenario sees the same episodes: a run's seed seeds the whole site (EV
sessions, loads, weather noise), so run ``k`` of every controller uses seed ``k``. Each run writes
a normal results folder under ``runs/<scenario>/<controller>/seed<k>/``; the row it returns holds
its KPIs and a digest of its EV sessions, which :func:`check_identical_episodes` compares.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qubit_sim.errors import (
    ConfigIssue,
    ControllerError,
    QubitSimError,
    ScenarioError,
    SimulationError,
)

__all__ = [
    "BASELINE",
    "MAIN_KPIS",
    "ControllerSpec",
    "EpisodeMismatchError",
    "RunTask",
    "check_identical_episodes",
    "controller_dir",
    "parse_controller",
    "plan_runs",
    "run_task",
]

#: The controller every comparison measures its gap against (perfect foresight).
BASELINE = "offline_optimal"

#: KPIs summarised by default: (key, label, unit; ``{currency}`` is filled in).
MAIN_KPIS: tuple[tuple[str, str, str], ...] = (
    ("objective_cost", "objective cost", "{currency}"),
    ("total_cost", "total cost", "{currency}"),
    ("peak_import_15min_kw", "peak import 15-min", "kW"),
    ("ev_energy_unmet_kwh", "EV energy unmet", "kWh"),
    ("co2_kg", "CO2", "kg"),
    ("voltage_violation_steps", "voltage violation steps", ""),
)

#: Session columns that define an episode; a controller changes none of them.
_EPISODE_COLUMNS = (
    "session_id",
    "vehicle_id",
    "arrival_s",
    "departure_s",
    "e_needed_kwh",
    "arrival_soc",
    "capacity_kwh",
)

_RL_PREFIX = "rl:"


class EpisodeMismatchError(SimulationError):
    """Controllers of one scenario and seed did not see the same EV sessions."""


@dataclass(frozen=True)
class ControllerSpec:
    """A controller as the comparison names it.

    Attributes:
        label: As given on the command line (``mpc``, ``rl:models/ppo_depot``).
        name: Registered controller name or ``"module:Class"``.
        params: Parameters for the controller factory.
    """

    label: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)


def parse_controller(text: str) -> ControllerSpec:
    """A controller as the command line names it.

    ``rl:<model path>`` is shorthand for ``rl_policy`` with ``model=<path>``; anything else is a
    registered name or ``"module:Class"``, optionally with parameters in brackets,
    ``mpc[horizon_slots=48,forecast=l2]`` (values read as YAML scalars, as ``--set`` reads them), so
    two settings of one controller compare side by side under their own labels.

    Raises:
        ControllerError: an empty name, an ``rl:`` without a model, or malformed brackets.
    """
    text = text.strip()
    if not text:
        raise ControllerError("empty controller name; use e.g. mpc or rl:models/<name>")
    if text.endswith("]") and "[" in text and not text.startswith(_RL_PREFIX):
        name, _, inside = text[:-1].partition("[")
        return ControllerSpec(text, name.strip(), _bracket_params(text, inside))
    if text.startswith(_RL_PREFIX):
        model = text[len(_RL_PREFIX) :]
        if not model:
            raise ControllerError(f"{text!r} names no model; write rl:models/<name>")
        # Absolute, so workers that start in another folder (Ray) find the same model.
        return ControllerSpec(
            text, "rl_policy", {"model": str(Path(model).expanduser().absolute())}
        )
    return ControllerSpec(text, text)


def _bracket_params(text: str, inside: str) -> dict[str, Any]:
    """``key=value`` pairs between a controller's brackets (comma-separated)."""
    import yaml

    params: dict[str, Any] = {}
    for item in inside.split(","):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ControllerError(
                f"{text!r}: {item.strip()!r} is not key=value; write e.g. mpc[horizon_slots=48,"
                "forecast=l2]"
            )
        if key in params:
            raise ControllerError(f"{text!r} sets {key!r} twice")
        try:
            params[key] = yaml.safe_load(raw.strip())
        except yaml.YAMLError:
            params[key] = raw.strip()
    if not text.partition("[")[0].strip():
        raise ControllerError(f"{text!r} names no controller before its parameters")
    return params


def controller_dir(label: str) -> str:
    """A folder name for a controller label (``rl:models/ppo`` -> ``rl-models-ppo``)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", label).strip("-") or "controller"


@dataclass(frozen=True)
class RunTask:
    """One run of the sweep; picklable, so any executor can ship it to a worker.

    Attributes:
        scenario: Scenario name (``site.name``).
        scenario_path: Absolute path of the scenario YAML.
        controller: The controller.
        seed: Run seed; every controller of a scenario gets the same seeds.
        out: Absolute path of the run's results folder.
        until_s: Simulate only this long [s] (``None``: the scenario's duration).
        plots: Write the run's own ``plots/*.png``.
        settle: Settle the run (bills, certificates, ledger).
        key_dir: Site signing keys for settlement.
    """

    scenario: str
    scenario_path: str
    controller: ControllerSpec
    seed: int
    out: str
    until_s: int | None = None
    plots: bool = False
    settle: bool = False
    key_dir: str | None = None


def plan_runs(
    scenarios: Sequence[tuple[str, Path]],
    controllers: Sequence[ControllerSpec],
    seeds: Sequence[int],
    out: Path,
    *,
    until_s: int | None = None,
    plots: bool = False,
    settle: bool = False,
    key_dir: Path | None = None,
) -> list[RunTask]:
    """Every scenario x controller x seed, as tasks with their results folders under ``out/runs``.

    Raises:
        ScenarioError: Two scenarios share a name, or two controllers a folder.
    """
    names = [name for name, _ in scenarios]
    issues = []
    for name in sorted({n for n in names if names.count(n) > 1}):
        issues.append(f"scenario name {name!r} appears twice; give each scenario its own site.name")
    folders = [controller_dir(c.label) for c in controllers]
    for folder in sorted({f for f in folders if folders.count(f) > 1}):
        issues.append(f"two controllers map to folder {folder!r}; list each controller once")
    if len(set(seeds)) != len(seeds):
        issues.append(f"seeds {list(seeds)} repeat a seed")
    if issues:
        raise ScenarioError([ConfigIssue("compare", text) for text in issues])
    root = out.resolve() / "runs"
    return [
        RunTask(
            scenario=name,
            scenario_path=str(path.resolve()),
            controller=controller,
            seed=int(seed),
            out=str(root / name / controller_dir(controller.label) / f"seed{seed}"),
            until_s=until_s,
            plots=plots,
            settle=settle,
            key_dir=str(key_dir) if key_dir is not None else None,
        )
        for name, path in scenarios
        for controller in controllers
        for seed in seeds
    ]


def _episode_digest(folder: Path) -> str:
    """SHA-256 over the sessions that define the episode, independent of what was delivered."""
    import pandas as pd

    path = folder / "sessions.parquet"
    if not path.is_file():
        return ""
    frame = pd.read_parquet(path)
    columns = [c for c in _EPISODE_COLUMNS if c in frame.columns]
    data = frame[columns].to_csv(index=False, float_format="%.9g")
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]


def run_task(task: RunTask) -> dict[str, Any]:
    """Run one task and return its row: identity, status, wall time, episode digest and KPIs.

    A run that fails keeps ``status="failed"`` and its ``error``; the sweep goes on.
    """
    from qubit_sim.scenario.runner import run

    row: dict[str, Any] = {
        "scenario": task.scenario,
        "controller": task.controller.label,
        "seed": task.seed,
        "status": "complete",
        "error": "",
        "run_dir": task.out,
    }
    start = time.perf_counter()
    kpis: dict[str, Any] = {}
    try:
        result = run(
            task.scenario_path,
            seed=task.seed,
            out=task.out,
            until_s=task.until_s,
            controller=task.controller.name,
            controller_params=dict(task.controller.params),
            plots=task.plots,
            settle=task.settle,
            key_dir=task.key_dir,
        )
        kpis = result.kpis
    except QubitSimError as exc:
        row["status"] = "failed"
        row["error"] = str(exc)
    row["wall_s"] = time.perf_counter() - start
    row["episode_digest"] = _episode_digest(Path(task.out))
    for key, value in kpis.items():
        if isinstance(value, bool):
            row[key] = int(value)
        elif isinstance(value, int | float) or key == "currency":
            row[key] = value
    return row


def check_identical_episodes(rows: Any) -> None:
    """Raise if two controllers of the same scenario and seed saw different EV sessions.

    Args:
        rows: The per-run frame (``scenario``, ``seed``, ``controller``, ``episode_digest``).

    Raises:
        EpisodeMismatchError: Naming the scenario, seed and controllers.
    """
    known = rows[rows["episode_digest"] != ""]
    for (scenario, seed), group in known.groupby(["scenario", "seed"], sort=True):
        digests = group.groupby("episode_digest")["controller"].apply(list)
        if len(digests) > 1:
            detail = "; ".join(f"{', '.join(c)} -> {d}" for d, c in digests.items())
            raise EpisodeMismatchError(
                f"scenario {scenario!r} seed {seed}: controllers saw different EV sessions "
                f"({detail}); a controller must not draw from the site's random streams"
            )

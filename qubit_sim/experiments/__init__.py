"""Compare controllers over scenarios x seeds, with statistics, on local processes or Ray."""

from qubit_sim.experiments.compare import ComparisonResult, compare, summary_table
from qubit_sim.experiments.executors import (
    EXECUTORS,
    ExecutorError,
    LocalExecutor,
    RayExecutor,
    make_executor,
)
from qubit_sim.experiments.harness import (
    BASELINE,
    MAIN_KPIS,
    ControllerSpec,
    EpisodeMismatchError,
    RunTask,
    check_identical_episodes,
    parse_controller,
    plan_runs,
    run_task,
)
from qubit_sim.experiments.stats import mean_ci, summarize

__all__ = [
    "BASELINE",
    "EXECUTORS",
    "MAIN_KPIS",
    "ComparisonResult",
    "ControllerSpec",
    "EpisodeMismatchError",
    "ExecutorError",
    "LocalExecutor",
    "RayExecutor",
    "RunTask",
    "check_identical_episodes",
    "compare",
    "make_executor",
    "mean_ci",
    "parse_controller",
    "plan_runs",
    "run_task",
    "summarize",
    "summary_table",
]

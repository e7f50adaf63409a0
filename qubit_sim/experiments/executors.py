"""Executors run a sweep's tasks: local worker processes by default, or a Ray cluster.

Both give the rows back in task order, whatever order the runs finish in, so a sweep's tables do
not depend on the executor or the number of workers.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any, Protocol

from qubit_sim.errors import QubitSimError
from qubit_sim.experiments.harness import RunTask, run_task

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorError",
    "LocalExecutor",
    "ProgressFn",
    "RayExecutor",
    "make_executor",
]

#: Called after each finished run with (runs done, runs in total, the run's row).
ProgressFn = Callable[[int, int, dict[str, Any]], None]

EXECUTORS = ("local", "ray")


class ExecutorError(QubitSimError):
    """An executor cannot be set up (unknown name, missing package, bad worker count)."""


class Executor(Protocol):
    """Runs tasks and returns their rows in task order."""

    name: str

    def map(
        self, tasks: Sequence[RunTask], progress: ProgressFn | None = None
    ) -> list[dict[str, Any]]: ...


class LocalExecutor:
    """Worker processes on this machine (spawned, so safe with threads and on every platform).

    Args:
        workers: Number of processes (default: the CPU count). With one worker the runs execute
            in this process, which is easiest to debug.
    """

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        count = workers if workers is not None else (os.cpu_count() or 1)
        if count < 1:
            raise ExecutorError(f"workers must be at least 1, got {count}")
        self.workers = count

    def map(
        self, tasks: Sequence[RunTask], progress: ProgressFn | None = None
    ) -> list[dict[str, Any]]:
        """Run ``tasks``; rows in task order."""
        rows: list[dict[str, Any] | None] = [None] * len(tasks)
        if self.workers == 1 or len(tasks) <= 1:
            for index, task in enumerate(tasks):
                rows[index] = run_task(task)
                if progress:
                    progress(index + 1, len(tasks), rows[index] or {})
            return [row for row in rows if row is not None]
        workers = min(self.workers, len(tasks))
        with (
            _one_thread_per_worker(),
            ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool,
        ):
            futures = {pool.submit(run_task, task): i for i, task in enumerate(tasks)}
            for done, future in enumerate(as_completed(futures), start=1):
                row = future.result()
                rows[futures[future]] = row
                if progress:
                    progress(done, len(tasks), row)
        return [row for row in rows if row is not None]


#: Thread pools of numerical libraries, read once when a worker imports them.
_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)


@contextmanager
def _one_thread_per_worker() -> Iterator[None]:
    """Spawned workers inherit the environment: one numerical thread each, since the workers
    already fill the cores and nested thread pools would oversubscribe them."""
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    for name in _THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class RayExecutor:
    """The same sweep on Ray: a local Ray instance, or a running cluster at ``address``.

    A local instance keeps its session files in a private temporary folder (not ``/tmp/ray`` or
    the home folder) and is shut down after the sweep; a cluster that was already running is only
    disconnected from.

    Args:
        address: Cluster address (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
            ``None`` starts a local instance.
        num_cpus: CPUs of a local instance (default: the CPU count).
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ExecutorError(
                "the ray executor needs Ray: pip install 'qubit-sim[ray]' (ray==2.60.0)"
            ) from None
        if num_cpus is not None and num_cpus < 1:
            raise ExecutorError(f"num_cpus must be at least 1, got {num_cpus}")
        self.address = address
        self.num_cpus = num_cpus if num_cpus is not None else (os.cpu_count() or 1)

    def map(
        self, tasks: Sequence[RunTask], progress: ProgressFn | None = None
    ) -> list[dict[str, Any]]:
        """Run ``tasks`` as Ray tasks; rows in task order."""
        import ray

        # Ray asks about and reports usage statistics unless told not to.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        temp_dir: str | None = None
        added_token = False
        started_here = not ray.is_initialized()
        if started_here:
            if self.address is None:
                # Ray's socket paths must stay short, hence a short folder directly under tmp.
                temp_dir = tempfile.mkdtemp(prefix="qsray-")
                if not {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & os.environ.keys():
                    # A token of our own, held in the environment, keeps token authentication
                    # on without Ray saving one to ~/.ray.
                    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
                    added_token = True
                ray.init(
                    num_cpus=self.num_cpus,
                    include_dashboard=False,
                    _temp_dir=temp_dir,
                    log_to_driver=False,
                    configure_logging=False,
                )
            else:
                ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        try:
            remote = ray.remote(num_cpus=1, max_retries=0)(run_task)
            refs = [remote.remote(task) for task in tasks]
            index = {ref: i for i, ref in enumerate(refs)}
            rows: list[dict[str, Any] | None] = [None] * len(tasks)
            pending = list(refs)
            done = 0
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    row = ray.get(ref)
                    rows[index[ref]] = row
                    done += 1
                    if progress:
                        progress(done, len(tasks), row)
            return [row for row in rows if row is not None]
        finally:
            if started_here:
                ray.shutdown()
            if temp_dir is not None:
                shutil.rmtree(temp_dir, ignore_errors=True)
            if added_token:
                os.environ.pop("RAY_AUTH_TOKEN", None)


def make_executor(
    name: str = "local", *, workers: int | None = None, address: str | None = None
) -> LocalExecutor | RayExecutor:
    """An executor by name: ``local`` (``workers`` processes) or ``ray`` (``address``, or a local
    instance with ``workers`` CPUs)."""
    if name == "local":
        if address is not None:
            raise ExecutorError("--address applies to the ray executor; add --executor ray")
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address, num_cpus=workers)
    raise ExecutorError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")

"""Exception hierarchy of qubit-sim.

Every error the package raises on purpose derives from :class:`QubitSimError`, so a caller can catch
one type. Subclasses say which part of the system complained; their messages name the offending
value and, where there is one, the fix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ArgumentError",
    "ConfigIssue",
    "ControllerError",
    "GridError",
    "ProtocolError",
    "QubitSimError",
    "ScenarioError",
    "SimulationError",
]


class QubitSimError(Exception):
    """Root of every error raised by qubit-sim."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found in a configuration file.

    Attributes:
        path: Location in the document, e.g. ``assets.chargers[0].power_kw``.
        message: What is wrong, including what was expected and what was found.
        line: 1-based line in the source file, when known.
    """

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path or "<root>"
        if self.line is not None:
            where = f"{where} (line {self.line})"
        return f"{where}: {self.message}"


class ScenarioError(QubitSimError):
    """A scenario file (or a twin template it uses) is invalid.

    All problems are collected first and reported together in :attr:`issues`.
    """

    def __init__(self, issues: Iterable[ConfigIssue], source: str | None = None) -> None:
        self.issues: list[ConfigIssue] = list(issues)
        self.source = source
        head = f"{source}: " if source else ""
        count = len(self.issues)
        lines = [f"{head}{count} problem{'s' if count != 1 else ''} in scenario"]
        lines += [f"  - {issue}" for issue in self.issues]
        super().__init__("\n".join(lines))


class ArgumentError(ScenarioError):
    """Arguments given to a command, a function or an environment are invalid; the scenario file
    is not at fault.

    A :class:`ScenarioError` (``except ScenarioError`` catches it, as before), whose message says
    whose arguments are wrong instead of "problem in scenario".

    Attributes:
        issues: Every problem, each naming the argument (``env_kwargs.forcast``).
        subject: Whose arguments, e.g. ``"the arguments of qubit-sim train"``.
        source: The scenario the arguments were checked against, when that matters.
    """

    def __init__(
        self, issues: Iterable[ConfigIssue], subject: str, source: str | None = None
    ) -> None:
        super().__init__(issues, source)
        self.subject = subject
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in {subject}"
        if source:
            head += f" (scenario {source})"
        self.args = ("\n".join([head, *(f"  - {issue}" for issue in self.issues)]),)

    def __str__(self) -> str:
        return str(self.args[0])


class SimulationError(QubitSimError):
    """The simulation could not continue. ``sim_time_s`` says where it stopped."""

    def __init__(self, message: str, sim_time_s: int | None = None) -> None:
        self.sim_time_s = sim_time_s
        super().__init__(message)


class GridError(QubitSimError):
    """The feeder model could not be built or a power flow failed."""


class ControllerError(QubitSimError):
    """A controller could not be found, built, or returned invalid setpoints."""


class ProtocolError(QubitSimError):
    """A protocol peer sent something invalid or did not answer."""

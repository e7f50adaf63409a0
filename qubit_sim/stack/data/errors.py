"""Errors of the data layer (L1).

All of them derive from :class:`DataError`, itself a :class:`~qubit_sim.errors.QubitSimError` and a
:class:`ValueError` (every one of them is a bad value handed in by the caller or found on disk).
"""

from __future__ import annotations

from qubit_sim.errors import QubitSimError

__all__ = [
    "AmbiguousTimeError",
    "DataError",
    "DocumentError",
    "ExportError",
    "NonexistentTimeError",
    "TelemetryError",
    "TimezoneError",
    "UnitError",
]


class DataError(QubitSimError, ValueError):
    """Root of every error raised by ``qubit_sim.stack.data``."""


class DocumentError(DataError):
    """A document does not conform to a Qubit v0.1 schema.

    Attributes:
        entity: Entity name (``"Meter"``, ...).
        issues: One ``"path: message"`` string per problem, all collected.
    """

    def __init__(self, entity: str, issues: list[str]) -> None:
        self.entity = entity
        self.issues = list(issues)
        count = len(self.issues)
        lines = [f"{entity} document has {count} problem{'s' if count != 1 else ''}"]
        lines += [f"  - {issue}" for issue in self.issues]
        super().__init__("\n".join(lines))


class UnitError(DataError):
    """A unit is unknown, or cannot be converted into the requested one."""


class TimezoneError(DataError):
    """A time zone is unknown, or a timestamp cannot be placed on the UTC time line."""


class NonexistentTimeError(TimezoneError):
    """A local time falls in a daylight-saving gap: the wall clock skipped it."""


class AmbiguousTimeError(TimezoneError):
    """A local time falls in a daylight-saving overlap: the wall clock showed it twice."""


class TelemetryError(DataError):
    """Telemetry could not be validated (shapes differ, times unordered or naive, bad bounds)."""


class ExportError(DataError):
    """A results folder could not be exported (missing file, unreadable scenario or columns)."""

"""Settings of the coordination layer, with the Qubit defaults."""

from __future__ import annotations

import re
from dataclasses import dataclass

from qubit_sim.stack.coordinate.errors import CoordinationError

__all__ = ["HOLD_STATES", "CoordinatorConfig"]

HOLD_STATES: frozenset[str] = frozenset({"FAULTED", "UNAVAILABLE"})
"""Asset states in which commands (other than CHANGE_AVAILABILITY) are held, not dispatched."""

_SITE_ID = re.compile(r"^sit_[a-zA-Z0-9_-]+$")


@dataclass(frozen=True)
class CoordinatorConfig:
    """Settings of the coordination layer (Qubit defaults).

    Attributes:
        site_id: Qubit site id (``sit_...``).
        dispatch_interval_seconds: Time between dispatch cycles [s]; also the retry base delay.
        command_timeout_seconds: Time an attempt may stay unanswered [s].
        max_retries: Retries after the first attempt.
        retry_backoff_factor: Multiplier of the retry delay per retry (>= 1).
        stale_state_seconds: Age [s] after which an asset's telemetry counts as stale.
        change_tolerance_kw: Schedule value changes up to this size [kW] emit no command.
    """

    site_id: str
    dispatch_interval_seconds: float = 5.0
    command_timeout_seconds: float = 30.0
    max_retries: int = 3
    retry_backoff_factor: float = 2.0
    stale_state_seconds: float = 60.0
    change_tolerance_kw: float = 1e-6

    def __post_init__(self) -> None:
        if not isinstance(self.site_id, str) or not _SITE_ID.match(self.site_id):
            raise CoordinationError(
                f"site_id {self.site_id!r} must match ^sit_[a-zA-Z0-9_-]+$ (e.g. 'sit_depot_1')"
            )
        for name in ("dispatch_interval_seconds", "command_timeout_seconds", "stale_state_seconds"):
            if not getattr(self, name) > 0:
                raise CoordinationError(f"{name} {getattr(self, name)!r} must be > 0 [s]")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise CoordinationError(f"max_retries {self.max_retries!r} must be an int >= 0")
        if self.max_retries < 0:
            raise CoordinationError(f"max_retries {self.max_retries} must be >= 0")
        if not self.retry_backoff_factor >= 1.0:
            raise CoordinationError(
                f"retry_backoff_factor {self.retry_backoff_factor!r} must be >= 1 (2.0 doubles)"
            )
        if not self.change_tolerance_kw >= 0:
            raise CoordinationError(
                f"change_tolerance_kw {self.change_tolerance_kw!r} must be >= 0 [kW]"
            )

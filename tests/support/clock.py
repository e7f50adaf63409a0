"""A simulated clock moved by hand, and a bounded runner for async test bodies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

__all__ = ["SimTime", "run"]

RUN_TIMEOUT_S = 30.0


class SimTime:
    """An explicit simulated clock the test moves by hand (``now_s``); calling it reads it [s]."""

    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def run(test: Callable[[], Awaitable[None]]) -> None:
    """Run the coroutine function ``test`` in a fresh event loop, failing after 30 s."""
    asyncio.run(asyncio.wait_for(test(), timeout=RUN_TIMEOUT_S))

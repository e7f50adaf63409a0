"""An asyncio loop in a daemon thread, so synchronous (hypothesis) tests can drive async code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Protocol, TypeVar

__all__ = ["LoopThread", "Service", "running"]

T = TypeVar("T")
S = TypeVar("S", bound="Service")
CALL_TIMEOUT_S = 20.0


class LoopThread:
    """An event loop running forever in a daemon thread; ``call`` runs a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (at most 20 s, then TimeoutError)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=CALL_TIMEOUT_S)

    def close(self) -> None:
        """Stop the loop, join its thread and close it."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()

    def __enter__(self) -> LoopThread:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Service(Protocol):
    """Anything with async ``start()``/``stop()``: the CSMS, a SunSpec server."""

    def start(self) -> Coroutine[Any, Any, Any]: ...

    def stop(self) -> Coroutine[Any, Any, Any]: ...


@contextmanager
def running(loop: LoopThread, service: S) -> Iterator[S]:
    """Start ``service`` on ``loop``, yield it, and stop it on the way out."""
    loop.call(service.start())
    try:
        yield service
    finally:
        loop.call(service.stop())

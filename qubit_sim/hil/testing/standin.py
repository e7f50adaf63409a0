"""What every stand-in device process shares: its command line and how it runs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["run_stand_in", "stand_in_parser"]


def stand_in_parser(
    description: str, *, unit_id: int, identity: tuple[str, str, str]
) -> argparse.ArgumentParser:
    """A parser with ``--host``, ``--port`` (0: a free one), ``--unit-id`` and the identity
    strings ``--manufacturer``, ``--model``, ``--serial``; the device adds its own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--unit-id", type=int, default=unit_id)
    for option, default in zip(("--manufacturer", "--model", "--serial"), identity, strict=True):
        parser.add_argument(option, default=default)
    return parser


def run_stand_in(
    serve: Callable[[argparse.Namespace], Coroutine[Any, Any, None]],
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
) -> None:
    """Parse ``argv`` and serve until killed or interrupted (Ctrl-C ends it quietly)."""
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))

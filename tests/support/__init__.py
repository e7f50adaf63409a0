"""Helpers shared by the protocol tests (test code only).

``support.loop`` runs an asyncio loop in a thread for synchronous tests; ``support.clock`` has a
hand-moved simulated clock and a bounded runner for async test bodies; ``support.ocpp_fuzz``
holds the checks and fuzz tests every OCPP endpoint must pass. The package is importable as
``support`` because pytest puts ``tests/`` on the path (``pythonpath`` in ``pyproject.toml``).
"""

from __future__ import annotations

__all__: list[str] = []

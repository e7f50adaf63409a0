"""One seeded random-number tree for a whole run.

Each consumer asks for a named stream. The stream is derived from the run seed and the *name*
(not from the order of requests), so adding a new consumer never changes the numbers another one
draws: same scenario + same seed -> bit-identical results.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["RngTree"]


class RngTree:
    """Factory of independent, reproducible :class:`numpy.random.Generator` streams.

    Args:
        seed: The run seed (non-negative integer).
    """

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        self.seed = int(seed)

    def _key(self, name: str) -> list[int]:
        digest = hashlib.sha256(name.encode("utf-8")).digest()
        return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]

    def seed_sequence(self, name: str) -> np.random.SeedSequence:
        """The :class:`numpy.random.SeedSequence` of stream ``name``."""
        return np.random.SeedSequence(entropy=self.seed, spawn_key=tuple(self._key(name)))

    def generator(self, name: str) -> np.random.Generator:
        """A fresh generator for stream ``name``; the same name always gives the same numbers."""
        return np.random.Generator(np.random.PCG64(self.seed_sequence(name)))

    def child_seed(self, name: str) -> int:
        """A 32-bit integer seed for libraries that take an int (mesa, SB3)."""
        return int(self.seed_sequence(name).generate_state(1, dtype=np.uint32)[0])

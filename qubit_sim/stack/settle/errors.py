"""The error raised by the settlement layer."""

from __future__ import annotations

from qubit_sim.errors import QubitSimError

__all__ = ["SettlementError"]


class SettlementError(QubitSimError):
    """Settlement inputs, keys or artefacts are invalid or cannot be written.

    Tampering found while *verifying* a settlement folder is not raised: it is reported in a
    :class:`~qubit_sim.stack.settle.verify.VerifyReport`, so a verifier always gets a full answer.
    """

"""The ``qubit-sim`` command line.

Heavy packages are imported inside the commands, so ``qubit-sim --help`` stays fast.
"""

from qubit_sim.cli.common import app, main

# Each module registers its commands on ``app`` when imported: this order is the order of
# ``qubit-sim --help``, so it is kept out of import sorting.
# isort: off
from qubit_sim.cli import run, settle, experiments, serve, rl  # noqa: F401
# isort: on

__all__ = ["app", "main"]

"""``python -m qubit_sim`` runs the command line."""

from qubit_sim.cli import main

main()

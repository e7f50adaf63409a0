"""qubit_sim.core."""

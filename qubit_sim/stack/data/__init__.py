"""qubit_sim.stack.data."""

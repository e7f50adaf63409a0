"""qubit_sim.rl."""

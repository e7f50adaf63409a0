"""qubit_sim.experiments."""

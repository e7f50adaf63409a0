"""qubit_sim.protocols."""

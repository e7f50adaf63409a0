"""qubit_sim.twins."""

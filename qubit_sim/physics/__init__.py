"""qubit_sim.physics."""

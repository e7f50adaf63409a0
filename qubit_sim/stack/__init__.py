"""qubit_sim.stack."""

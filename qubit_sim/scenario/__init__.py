"""qubit_sim.scenario."""

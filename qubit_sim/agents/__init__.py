"""qubit_sim.agents."""

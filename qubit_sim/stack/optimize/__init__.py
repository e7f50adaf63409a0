"""qubit_sim.stack.optimize."""

"""qubit_sim.stack.settle."""

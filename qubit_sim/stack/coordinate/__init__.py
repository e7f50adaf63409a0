"""qubit_sim.stack.coordinate."""

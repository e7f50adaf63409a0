"""qubit_sim.stack.predict."""

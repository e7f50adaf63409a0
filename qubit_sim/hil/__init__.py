"""qubit_sim.hil."""

"""qubit_sim.grid."""

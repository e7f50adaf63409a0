"""Stand-ins for physical devices, run as separate processes by the HIL tests and demos."""

__all__: list[str] = []

"""A run's mechanics: the run loop, crash resume and repair, signals, the run's clock, state
and environment, errors and exit codes."""

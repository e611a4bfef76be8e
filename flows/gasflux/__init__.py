"""002 GasFlux flows: the processing pipeline and the scheduled cleanup of old tasks."""

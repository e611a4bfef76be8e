"""002 GasFlux persistence: task and upload records (models)."""

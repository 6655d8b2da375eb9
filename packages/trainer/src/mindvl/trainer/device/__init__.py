"""Device quirks applied to the model from outside: selection, attention backends, parallelism."""

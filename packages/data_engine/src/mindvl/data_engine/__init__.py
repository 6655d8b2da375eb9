"""mindvl.data_engine."""

"""mindvl.common."""

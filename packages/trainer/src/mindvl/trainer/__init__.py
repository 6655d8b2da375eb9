"""mindvl.trainer."""

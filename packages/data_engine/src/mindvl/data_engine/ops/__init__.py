"""Filter operators: one small class per file, registered in :mod:`.registry`."""

"""The data-engine build on Ray: plan on the driver, stream through Ray Data, stage, mix."""

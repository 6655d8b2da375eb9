"""Mixing: select a stage's samples to target ratios and write them into WebDataset shards
with a ratio manifest, an index and an HTML report. Entry point: :func:`write_stage`."""

from mindvl.data_engine.mix.stage import write_stage

__all__ = ["write_stage"]

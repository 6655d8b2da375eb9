"""``mindvl train``, ``mindvl ckpt`` and ``mindvl eval``: one line per subcommand, loaded lazily."""

from __future__ import annotations

import click

from mindvl.common.lazy_group import LazyGroup


@click.group(cls=LazyGroup, lazy={"run": "mindvl.trainer.train_cli:run_command"})
def train() -> None:
    """Train a MindVL model on packed shards, stage by stage."""


@click.group(cls=LazyGroup, lazy={"average": "mindvl.trainer.ckpt_cli:average"})
def ckpt() -> None:
    """Checkpoint tools: average, inspect."""


@click.group(cls=LazyGroup, lazy={"run": "mindvl.trainer.eval_cli:eval_command"})
def eval_group() -> None:
    """Evaluate checkpoints."""

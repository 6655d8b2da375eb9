"""``mindvl train`` and ``mindvl ckpt``: one line per subcommand, loaded lazily.

``mindvl eval`` is a single command (``eval_cli.eval_command``), registered directly."""

from __future__ import annotations

import click

from mindvl.common.lazy_group import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy={
        "run": "mindvl.trainer.train_cli:run_command",
        "plan": "mindvl.trainer.train_cli:plan_command",
    },
)
def train() -> None:
    """Train a MindVL model on packed shards, stage by stage."""


@click.group(
    cls=LazyGroup,
    lazy={"average": "mindvl.trainer.ckpt_cli:average", "export": "mindvl.trainer.ckpt_cli:export"},
)
def ckpt() -> None:
    """Checkpoint tools: weight averaging across sequence lengths."""

"""``mindvl data`` and ``mindvl manifest``: one line per subcommand, each loaded lazily.

Add a command by writing it in its own module and naming it here."""

from __future__ import annotations

import click

from mindvl.common.lazy_group import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy={
        "synth": "mindvl.data_engine.synth.cli:synth",
        "train-quality": "mindvl.data_engine.ops.train_quality:train_quality",
        "build": "mindvl.data_engine.build_cli:build_command",
        "ray-head": "mindvl.data_engine.ray_head_cli:ray_head_command",
    },
)
def data() -> None:
    """Data engine: synthesise corpora, build stage mixtures on Ray, train filters."""


@click.group(
    cls=LazyGroup,
    lazy={
        "show": "mindvl.data_engine.manifest_cli.show:show",
        "verify": "mindvl.data_engine.manifest_cli.verify:verify",
        "diff": "mindvl.data_engine.manifest_cli.diff:diff",
    },
)
def manifest() -> None:
    """Inspect, verify and diff ratio manifests."""

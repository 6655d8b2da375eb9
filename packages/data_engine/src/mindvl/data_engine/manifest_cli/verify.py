"""``mindvl manifest verify M``: re-hash the shards against the manifest."""

from __future__ import annotations

import click

from mindvl.common.manifest import verify_shards
from mindvl.data_engine.manifest_cli.load import load


@click.command("verify")
@click.argument("manifest")
def verify(manifest: str) -> None:
    """Check every shard of MANIFEST exists and hashes as recorded; exit 1 naming each problem."""
    m, d = load(manifest)
    problems = verify_shards(m, d)
    for p in problems:
        click.echo(f"FAIL {p}", err=True)
    if problems:
        raise click.exceptions.Exit(1)
    click.echo(
        f"ok: {len(m.shards)} shards, {sum(s.samples for s in m.shards)} samples verified in {d}"
    )

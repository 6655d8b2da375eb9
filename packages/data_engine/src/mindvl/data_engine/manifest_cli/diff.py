"""``mindvl manifest diff A B``: what changed between two builds, and whether it is too much."""

from __future__ import annotations

import json

import click

from mindvl.data_engine.manifest_cli.load import load


@click.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
@click.option("--markdown", is_flag=True, help="Print the diff as Markdown tables.")
@click.option("--list", "list_keys", is_flag=True, help="List the added and removed sample keys.")
@click.option(
    "--fail-on",
    multiple=True,
    metavar="KIND=TOL",
    help="Exit 1 on drift beyond tolerance: ratio=F, samples=N, tokens=F (relative), funnel=N, keys=N; comma-separated or repeated.",
)
def diff(
    a: str, b: str, as_json: bool, markdown: bool, list_keys: bool, fail_on: tuple[str, ...]
) -> None:
    """Compare manifests A and B (manifest.json files or build directories)."""
    from mindvl.data_engine.manifest_cli.diff_core import diff_manifests
    from mindvl.data_engine.manifest_cli.diff_render import render_markdown, render_text
    from mindvl.data_engine.manifest_cli.drift import parse_tolerances, violations

    if as_json and markdown:
        raise click.UsageError("choose one of --json and --markdown")
    tolerances = parse_tolerances(fail_on)
    ma, da = load(a)
    mb, db = load(b)
    d = diff_manifests(ma, da, mb, db, list_keys)
    bad = violations(d, tolerances)
    if as_json:
        d["violations"] = bad
        click.echo(json.dumps(d, indent=2, sort_keys=True))
    else:
        click.echo(render_markdown(d) if markdown else render_text(d))
        for line in bad:
            click.echo(f"DRIFT {line}", err=True)
    if bad:
        raise click.exceptions.Exit(1)

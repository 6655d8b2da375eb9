"""JSON Schemas of the shared contracts, exported to docs/schemas/ by ``mindvl schemas``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mindvl.common.manifest import RatioManifest
from mindvl.common.recipe import Recipe
from mindvl.common.sample import Sample

CONTRACTS = {"sample": Sample, "recipe": Recipe, "manifest": RatioManifest}


def schema_texts() -> dict[str, str]:
    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True)
        + "\n"
        for name, model in CONTRACTS.items()
    }


@click.command("schemas")
@click.option("--out", default="docs/schemas", show_default=True, type=click.Path(path_type=Path))
@click.option("--check", is_flag=True, help="exit 1 if the files in --out are not current")
def schemas_command(out: Path, check: bool) -> None:
    """Export (or --check) the JSON Schemas of sample, recipe and manifest."""
    stale = []
    for name, text in schema_texts().items():
        p = out / name
        if check:
            if not p.is_file() or p.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            out.mkdir(parents=True, exist_ok=True)
            p.write_text(text, encoding="utf-8")
            click.echo(f"wrote {p}")
    if stale:
        click.echo(f"stale schemas in {out}: {', '.join(stale)}; run `mindvl schemas`", err=True)
        raise click.exceptions.Exit(1)

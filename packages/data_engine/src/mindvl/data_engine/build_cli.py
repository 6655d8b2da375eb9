"""``mindvl data build RECIPE --out DIR``: load the recipe, plan, connect to Ray, run.

Without ``--address`` (and without ``RAY_ADDRESS``) an embedded local Ray is started with
``--num-cpus`` CPUs; otherwise the build runs against that cluster. The same command works
as the entrypoint of a Ray job (the job sets ``RAY_ADDRESS``), see docs/RAY_JOBS.md.
Recipe and source problems are reported in one line before Ray starts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mindvl.common.errors import UserError


def _echo(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line, file=sys.stderr)  # above any live progress bars


def _summary(result, out_dir: Path) -> dict:
    return {
        "out": str(out_dir),
        "seconds": round(result.seconds, 3),
        "stages": result.stages,
        "sources": [s.model_dump() for s in result.accounting.sources],
        "total_samples": None if result.manifest is None else result.manifest.total_samples,
    }


@click.command("build")
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--var", "var", multiple=True, help="recipe variable NAME=VALUE (repeatable)")
@click.option("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or local)")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None, help="CPUs of a local Ray")
@click.option("--progress-every", type=click.FloatRange(min=0.1), default=None,
              help="print progress lines every SECONDS (default: live bars on a terminal, "
              "none otherwise)")  # fmt: skip
@click.option("--quiet", is_flag=True, help="no progress; errors and the last line only")
@click.option("--json", "as_json", is_flag=True,
              help="no progress; print the result as one JSON object on stdout")  # fmt: skip
def build_command(
    recipe: Path,
    out_dir: Path,
    var: tuple[str, ...],
    address: str | None,
    num_cpus: int | None,
    progress_every: float | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Build a stage: read sources, filter, dedup, caption, mix into shards + manifest."""
    from mindvl.common.progress import choose_mode
    from mindvl.common.recipe import load_recipe, parse_variables
    from mindvl.data_engine.build.pipeline import prepare, recipe_record, run_build

    variables = parse_variables(var)
    spec = load_recipe(recipe, variables)
    try:
        text = recipe.read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"{recipe}: cannot read recipe: {err.strerror}") from None
    plan = prepare(spec, str(recipe))
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} exists and is not a directory")
    import ray

    from mindvl.data_engine.build.ray_session import init_ray

    init_ray(address, num_cpus)

    try:
        result = run_build(
            spec,
            recipe_record(text, variables),
            out_dir,
            source=str(recipe),
            plan=plan,
            echo=(lambda _line: None) if quiet or as_json else _echo,
            progress_interval=progress_every or 0.5,
            progress_mode=choose_mode(quiet or as_json, progress_every),
        )
    finally:
        ray.shutdown()
    if as_json:
        click.echo(json.dumps(_summary(result, out_dir), sort_keys=True))
        return
    for s in [] if quiet else result.accounting.sources:
        _echo(f"[build] {s.source}: input {s.input} kept {s.kept} dropped {s.dropped}")
    _echo(f"[build] done in {result.seconds:.1f}s -> {out_dir}")
    sys.stdout.flush()

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
from mindvl.data_engine.pipeline.ray_session import TEMP_DIR_ENV


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
@click.option(
    "--overwrite",
    is_flag=True,
    help="replace another build's files in --out (without it such a dir is refused)",
)
@click.option(
    "--ray-temp-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"temp dir of an embedded Ray (default: ${TEMP_DIR_ENV}, else Ray's /tmp/ray)",
)
def build_command(
    recipe: Path,
    out_dir: Path,
    var: tuple[str, ...],
    address: str | None,
    num_cpus: int | None,
    progress_every: float | None,
    quiet: bool,
    as_json: bool,
    overwrite: bool,
    ray_temp_dir: Path | None,
) -> None:
    """Build a stage: read sources, filter, dedup, caption, mix into shards + manifest.

    A rerun into the same --out resumes the same build; a dir holding another build is
    refused unless --overwrite."""
    from mindvl.common.progress import choose_mode
    from mindvl.common.recipe import load_recipe, parse_variables
    from mindvl.data_engine.pipeline.run import (
        claim_build_dir,
        prepare,
        recipe_record,
        run_build,
    )

    variables = parse_variables(var)
    spec = load_recipe(recipe, variables)
    try:
        text = recipe.read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"{recipe}: cannot read recipe: {err.strerror}") from None
    plan = prepare(spec, str(recipe))
    record = recipe_record(text, variables)
    claim_build_dir(out_dir, record, overwrite)  # before Ray starts: a refusal is instant
    import ray

    from mindvl.data_engine.pipeline.ray_session import init_ray

    init_ray(address, num_cpus, str(ray_temp_dir) if ray_temp_dir else None)

    try:
        result = run_build(
            spec,
            record,
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

"""The streaming build on Ray Data: read -> operators -> dedup -> caption -> staging -> mix.

Units (files, byte ranges, row groups) are listed on the driver; ``from_items`` turns them
into one-row blocks, so reading is spread over the cluster and the streaming executor keeps
only a bounded number of blocks (encoded images) in flight. Rows dropped by readers or
operators are written to staging as they go; the kept rows continue to the global dedup
and captioning stages unless the recipe disables them (a skipped stage is said so).
Staging is turned into deterministic, key-sorted Parquet files, the funnel is counted from
them, and mixing (``write_stage``) writes shards + manifest.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mindvl.common.errors import UserError
from mindvl.common.manifest import DedupStats, RecipeRecord
from mindvl.common.progress import Mode
from mindvl.common.recipe import Recipe, resolved_digest
from mindvl.data_engine.caption import caption_dataset
from mindvl.data_engine.dedup import dedup_dataset
from mindvl.data_engine.mix import write_stage
from mindvl.data_engine.ops.base import OpContext
from mindvl.data_engine.pipeline.decontam import eval_fingerprints
from mindvl.data_engine.pipeline.duplicate_keys import losers_before_dedup, mark_listed
from mindvl.data_engine.pipeline.out_dir import claim_out_dir, identity
from mindvl.data_engine.pipeline.plan import BuildPlan, check_resources, plan_build
from mindvl.data_engine.pipeline.stages import (
    OperatorStage,
    apply_operators,
    read_stage,
    split_dropped,
    write_parts,
)
from mindvl.data_engine.pipeline.staging import caption_outcomes, finalize_staging, write_stats

Echo = Callable[[str], None]


@dataclass
class BuildResult:
    out_dir: Path
    stages: dict[str, str] = field(default_factory=dict)  # stage -> "ran" | "skipped: why"
    accounting: Any = None
    manifest: Any = None
    seconds: float = 0.0
    # captioning never drops: samples that kept their original text are counted here,
    # not in the funnel (whose entries are drops: input = kept + sum of the funnel)
    caption_outcomes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # phase -> wall seconds


def recipe_record(text: str, variables: dict[str, str]) -> RecipeRecord:
    return RecipeRecord(
        text=text, digest=resolved_digest(text, variables), variables=dict(variables)
    )


def prepare(recipe: Recipe, source: str) -> BuildPlan:
    """Driver-side checks and planning; raises a one-line UserError before any work."""
    if "://" not in recipe.tokenizer and not Path(recipe.tokenizer).exists():
        raise UserError(f"{source}: tokenizer: path not found: {recipe.tokenizer}")
    return plan_build(recipe, source)


def claim_build_dir(out: Path, record: RecipeRecord, overwrite: bool = False) -> str:
    from mindvl.data_engine.mix.provenance import code_version

    return claim_out_dir(out, identity(record, code_version()), overwrite)


def _context(recipe: Recipe, work: Path) -> OpContext:
    from mindvl.data_engine.ops.image_decode import ImageDecodeParams

    decode = next((s.params for s in recipe.operators if s.op == "image_decode"), {})
    return OpContext(
        tokenizer_path=recipe.tokenizer,
        image_rule=recipe.image_tokens,
        work_dir=str(work),
        blur_score=any(spec.op == "blur" for spec in recipe.operators),
        decode=ImageDecodeParams.model_validate(decode),
    )


def run_build(
    recipe: Recipe,
    record: RecipeRecord,
    out_dir: str | Path,
    *,
    source: str = "<recipe>",
    plan: BuildPlan | None = None,
    echo: Echo = print,
    progress_interval: float = 5.0,
    overwrite: bool = False,
    progress_mode: Mode = "lines",
) -> BuildResult:
    """Run a whole build against the Ray cluster ``ray.init`` connected to. The out dir is
    claimed first (``out_dir.py``): another build's dir is refused unless ``overwrite``."""
    t0 = time.monotonic()
    plan = plan or prepare(recipe, source)
    out = Path(out_dir)
    if claim_build_dir(out, record, overwrite) == "resume":
        echo(f"[build] {out} holds this build already: resuming (finished shards are reused)")
    result = BuildResult(out)
    dedup_stats = stream_to_staging(
        recipe, plan, out / "_work", result.stages, source=source, echo=echo,
        progress_interval=progress_interval, progress_mode=progress_mode,
    )  # fmt: skip
    t1 = time.monotonic()
    result.timings["read, filters, dedup, caption -> staging"] = t1 - t0
    work = out / "_work"
    result.accounting = finalize_staging(work, plan, recipe, dedup_stats)
    result.timings["sort staging, funnel, rejects"] = time.monotonic() - t1
    if result.stages.get("caption") == "ran":
        result.caption_outcomes = caption_outcomes(work / "kept")
    t2 = time.monotonic()
    result.manifest = write_stage(work / "kept", recipe, record, out, result.accounting)
    result.stages["mix"] = "ran"
    result.timings["mix, shards, manifest"] = time.monotonic() - t2
    _report_timings(out, result, echo)
    result.seconds = time.monotonic() - t0
    write_stats(work / "stats.json", result, plan)
    return result


def _report_timings(out: Path, result: BuildResult, echo: Echo) -> None:
    """Rewrite report.html with the phases' timings (best-effort: the build is done)."""
    from mindvl.data_engine.mix.report import write_report

    try:
        write_report(out, result.manifest, result.timings)
    except Exception as err:  # noqa: BLE001 - a report is never worth failing a build for
        echo(f"[build] report.html kept without timings: {type(err).__name__}: {err}")


def stream_to_staging(
    recipe: Recipe,
    plan: BuildPlan,
    work: Path,
    stages: dict[str, str],
    *,
    source: str = "<recipe>",
    echo: Echo = print,
    progress_interval: float = 5.0,
    progress_mode: Mode = "lines",
    on_stats: Echo | None = None,
) -> DedupStats:
    """The Ray Data part: every input row ends in ``work/parts/{kept,dropped}``.
    ``progress_mode``: live per-stage bars, periodic lines or none (best-effort: a lost
    progress actor never fails the build). ``on_stats`` receives Ray Data's execution
    summary of the last dataset (tasks and blocks per operator) when it is done."""
    import ray
    from ray.data import DataContext
    from ray.data.context import ShuffleStrategy

    from mindvl.data_engine.pipeline.progress import ProgressCounts, ProgressReporter

    check_resources(plan.op_groups, ray.cluster_resources())
    for sub in ("parts", "kept", "dropped"):
        shutil.rmtree(work / sub, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    context = _context(recipe, work)

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the build's own per-stage display (progress.py)
    # Dedup's group-bys: the task-based sort shuffle, not Ray 2.60's default hash shuffle,
    # whose long-lived aggregator actors left a 2-CPU build idle for most of a ~150 s dedup
    # (bench/data_engine.py; the sort shuffle's ~5 s per group-by vs 20-45 s).
    ctx.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    actor = ray.remote(num_cpus=0)(ProgressCounts).remote()
    reporter = ProgressReporter(
        actor, plan.units_per_source, progress_interval, echo, progress_mode
    )
    echo(
        f"[build] {len(plan.units)} units from {len(recipe.sources)} sources, "
        f"{len(plan.op_groups)} operator stages, {plan.buckets} staging buckets"
    )

    reporter.start()
    try:
        ds, dedup_stats = _dataset(recipe, plan, work, stages, context, actor, source, echo)
        for _ in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            pass
    finally:
        reporter.close()
    if on_stats is not None:
        on_stats(ds.stats())
    return dedup_stats


def _dataset(
    recipe: Recipe,
    plan: BuildPlan,
    work: Path,
    stages: dict[str, str],
    context: OpContext,
    actor: Any,
    source: str,
    echo: Echo,
) -> tuple[Any, DedupStats]:
    """The lazy dataset from units to staging parts (dedup materialises its input)."""
    import ray
    from ray.data import ActorPoolStrategy

    from mindvl.data_engine.pipeline.progress import count_stage

    parts = str(work / "parts")
    rows = [{"unit": u.to_json(), "index": i} for i, u in enumerate(plan.units)]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    ds = ds.map_batches(read_stage, fn_args=(actor,), batch_size=1, batch_format="pyarrow")
    for g in plan.op_groups:
        args = (g.specs, source, context)
        if g.uses_actor:
            res = {
                k: v
                for k, v in g.resources.items()
                if k in ("num_cpus", "num_gpus", "resources", "memory")
            }
            ds = ds.map_batches(
                OperatorStage, fn_constructor_args=args, batch_format="pyarrow",
                batch_size=64, compute=ActorPoolStrategy(size=g.concurrency), **res,
            )  # fmt: skip
        else:
            # batch_size=None: each block as the read stage yields it (READ_CHUNK rows).
            # A fixed size would become the fused read task's minimum input (Ray fuses
            # read -> operators and bundles max(batch sizes) rows per task), which put
            # every unit of a build into one task: one busy CPU on a 2-CPU build.
            ds = ds.map_batches(
                apply_operators, fn_args=args, batch_format="pyarrow", batch_size=None
            )
        stages[f"ops:{g.names}"] = "ran"
    sink = (parts, plan.buckets, actor)
    ds = ds.map_batches(split_dropped, fn_args=sink, batch_format="pyarrow", batch_size=None)

    dedup_stats = DedupStats()
    spec = recipe.dedup
    wants_dedup = spec.exact or spec.near.enabled or bool(spec.decontaminate)
    if not wants_dedup:
        stages["dedup"] = "skipped: disabled in the recipe"
    else:
        # dedup materialises its input anyway; first make sure it never sees a key twice
        ds = ds.materialize()
        losers = losers_before_dedup(ds, f"{parts}/dropped")
        if losers:
            formats = {s.name: s.format for s in recipe.sources}
            ds = ds.map_batches(
                mark_listed, fn_args=(losers, formats), batch_format="pyarrow", batch_size=None
            )
        evals = eval_fingerprints(plan.eval_units) if spec.decontaminate else None
        ds, dedup_stats = dedup_dataset(ds, spec, evals)
        ds = ds.map_batches(count_stage, fn_args=(actor, "dedup"), batch_format="pyarrow",
                            batch_size=None)  # fmt: skip
        stages["dedup"] = "ran"

    if not recipe.caption.enabled:
        stages["caption"] = "skipped: disabled in the recipe"
    else:
        ds = caption_dataset(ds, recipe.caption, str(work / "caption"))
        ds = ds.map_batches(count_stage, fn_args=(actor, "caption"), batch_format="pyarrow",
                            batch_size=None)  # fmt: skip
        stages["caption"] = "ran"
    for stage, state in stages.items():
        if state != "ran":
            echo(f"[build] stage {stage} {state}")

    ds = ds.map_batches(write_parts, fn_args=sink, batch_format="pyarrow", batch_size=None)
    return ds, dedup_stats

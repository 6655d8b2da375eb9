"""From staging parts to the build's record: sorted kept/dropped files, funnel, rejects.

The funnel is counted from the staged rows themselves (one row per input sample), so
``input = kept + sum(dropped)`` holds per source by construction and is checked here.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mindvl.common.manifest import REJECTS_NAME, DedupStats, FunnelEntry, SourceFunnel
from mindvl.common.recipe import Recipe
from mindvl.data_engine.accounting import BuildAccounting
from mindvl.data_engine.mix.rejects import save_rejects
from mindvl.data_engine.pipeline.parts import finalize_bucket

STAGES = ("read", "filter", "dedup", "caption", "mix")


def _finalize_buckets(work: Path, formats: dict[str, str]) -> tuple[list[Path], list[Path]]:
    """Merge each bucket of ``parts/{kept,dropped}`` into ``{kept,dropped}/part-NNNNN.parquet``
    (one Ray task per bucket); the kept and dropped files written."""
    import ray

    names = sorted(
        {b.name for kind in ("kept", "dropped") for b in (work / "parts" / kind).glob("bucket-*")}
    )
    task = ray.remote(num_cpus=1)(finalize_bucket)
    outs = {
        k: [work / k / f"part-{n.split('-')[1]}.parquet" for n in names]
        for k in ("kept", "dropped")
    }
    parts = work / "parts"
    counts = ray.get(
        [
            task.remote(
                str(parts / "kept" / n), str(parts / "dropped" / n), str(k), str(d), formats
            )
            for n, k, d in zip(names, outs["kept"], outs["dropped"], strict=True)
        ]
    )
    kept = [p for p, (k, _) in zip(outs["kept"], counts, strict=True) if k]
    dropped = [p for p, (_, d) in zip(outs["dropped"], counts, strict=True) if d]
    return kept, dropped


def _read(files: list[Path], columns: list[str]) -> pa.Table:
    if not files:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files])


def _dup_fields(meta: str | None) -> tuple[Any, Any]:
    data = json.loads(meta) if meta else {}
    return data.get("dup_group"), data.get("dup_survivor")


def write_rejects(dropped: pa.Table, path: Path) -> None:
    dups = [_dup_fields(m) for m in dropped.column("meta").to_pylist()]
    groups = [None if g is None else str(g) for g, _ in dups]
    table = pa.table(
        {
            "key": dropped.column("key"),
            "source": dropped.column("source"),
            "stage": dropped.column("drop_stage"),
            "op": dropped.column("drop_op"),
            "reason": dropped.column("drop_reason"),
            "dup_group": pa.array(groups, pa.string()),
            "dup_survivor": pa.array([None if s is None else str(s) for _, s in dups], pa.string()),
        }
    )
    save_rejects(table, path)


def finalize_staging(work: Path, plan: Any, recipe: Recipe, dedup: DedupStats) -> BuildAccounting:
    kept_files, dropped_files = _finalize_buckets(work, {s.name: s.format for s in recipe.sources})
    kept = _read(kept_files, ["source"])
    cols = ["key", "source", "drop_stage", "drop_op", "drop_reason", "meta"]
    dropped = _read(dropped_files, cols)
    write_rejects(dropped, work.parent / REJECTS_NAME)
    shutil.rmtree(work / "parts", ignore_errors=True)

    kept_n = Counter(kept.column("source").to_pylist())
    drops = Counter(
        zip(
            dropped.column("source").to_pylist(),
            dropped.column("drop_stage").to_pylist(),
            dropped.column("drop_op").to_pylist(),
            dropped.column("drop_reason").to_pylist(),
            strict=True,
        )
    )
    funnel = [
        FunnelEntry(source=s, stage=st if st in STAGES else "filter", op=op, reason=r, count=n)
        for (s, st, op, r), n in sorted(drops.items())
    ]
    sources = []
    for spec in recipe.sources:
        d = sum(e.count for e in funnel if e.source == spec.name)
        k = kept_n.get(spec.name, 0)
        sources.append(
            SourceFunnel(source=spec.name, category=spec.category, input=k + d, kept=k, dropped=d)
        )
    return BuildAccounting(inputs=list(plan.inputs), sources=sources, funnel=funnel, dedup=dedup)


def caption_outcomes(kept_dir: Path) -> dict[str, int]:
    """``source/outcome`` -> samples, from the kept rows' meta (see caption.outcomes)."""
    from mindvl.data_engine.caption.outcomes import count_outcomes

    table = _read(sorted(kept_dir.glob("*.parquet")), ["source", "meta"])
    counts = count_outcomes(table.to_pylist())
    return {f"{src}/{outcome}": n for (src, outcome), n in sorted(counts.items())}


def write_stats(path: Path, result: Any, plan: Any) -> None:
    acc = result.accounting
    data = {
        "stages": result.stages,
        "seconds": round(result.seconds, 3),
        "units": len(plan.units),
        "buckets": plan.buckets,
        "sources": [s.model_dump() for s in acc.sources] if acc else [],
        "funnel": [f.model_dump() for f in acc.funnel] if acc else [],
        "dedup": acc.dedup.model_dump() if acc else {},
        "inputs": len(plan.inputs),
        "caption_outcomes": getattr(result, "caption_outcomes", {}),
        "timings": {k: round(v, 3) for k, v in getattr(result, "timings", {}).items()},
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

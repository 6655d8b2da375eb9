"""``mindvl manifest diff`` on two builds with 1M-sample indexes: wall time and peak memory.

Builds two synthetic build directories (manifest.json + index.parquet; no shards needed):
B drops 5 % of A's samples, adds as many new ones, and changes a recipe threshold and the
ratios. Times the command as a user runs it (a fresh ``mindvl`` process, so interpreter
and import start-up are included) and reads the child's peak RSS. Target: < 10 s.
Writes ``bench/results/manifest_diff.json``.

    uv run python bench/manifest_diff.py [--samples 1000000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mindvl.common.manifest import (
    CategoryMix,
    DedupStats,
    FunnelEntry,
    MixtureRecord,
    RatioManifest,
    RecipeRecord,
    ShardRecord,
    SourceFunnel,
    TokenizerRecord,
)
from mindvl.common.tokens import ImageTokenRule
from mindvl.data_engine.mix.index import index_schema

CATS = {"caption": "src_caption", "ocr": "src_ocr", "chart": "src_chart", "grounding": "src_ground"}


def recipe_text(threshold: int, ocr: float) -> str:
    rest = (1 - ocr) / 3
    return (
        "name: bench\nstage: s1\ntokenizer: tok\nsources:\n"
        + "".join(
            f"  - {{name: {s}, path: /d/{s}, format: llava, category: {c}}}\n"
            for c, s in CATS.items()
        )
        + f"operators:\n  - op: image_size\n    params: {{min_side: {threshold}}}\n"
        + f"mixture:\n  budget: 1000000\n  targets: {{ocr: {ocr}, caption: {rest}, chart: {rest}, grounding: {rest}}}\n"
    )


def build(d: Path, ids: np.ndarray, threshold: int, ocr: float, per_shard: int = 1000) -> None:
    d.mkdir(parents=True)
    n = len(ids)
    rng = np.random.default_rng(int(ids[0]))
    cats = list(CATS)
    cat_idx = ids % len(cats)
    keys = pa.array(
        [
            f"{CATS[cats[c]]}-id{i}_{i * 2654435761 % 2**48:012x}"
            for i, c in zip(ids.tolist(), cat_idx.tolist(), strict=True)
        ]
    )
    shard = pa.array([f"s1-{i // per_shard:06d}.tar" for i in range(n)])
    img = rng.integers(64, 1024, n)
    txt = rng.integers(8, 200, n)
    table = pa.table(
        {
            "key": keys,
            "origin_key": pa.nulls(n, pa.string()),
            "source": pa.array([CATS[cats[c]] for c in cat_idx.tolist()]),
            "category": pa.array([cats[c] for c in cat_idx.tolist()]),
            "shard": shard,
            "image_tokens": pa.array(img, pa.int64()),
            "text_tokens": pa.array(txt, pa.int64()),
            "phash": pa.array([f"{x:016x}" for x in rng.integers(0, 2**62, n).tolist()]),
            "caption_provenance": pa.nulls(n, pa.string()),
        },
        schema=index_schema(),
    )
    pq.write_table(table, d / "index.parquet", compression="zstd")
    mixes = []
    for j, c in enumerate(cats):
        sel = cat_idx == j
        s, it, tt = int(sel.sum()), int(img[sel].sum()), int(txt[sel].sum())
        mixes.append(
            CategoryMix(
                category=c,
                available_samples=s,
                available_tokens=it + tt,
                target_fraction=0.25,
                selected_unique=s,
                repeats=0,
                samples=s,
                image_tokens=it,
                text_tokens=tt,
                achieved_fraction_samples=s / n,
                achieved_fraction_tokens=(it + tt) / int(img.sum() + txt.sum()),
            )
        )
    text = recipe_text(threshold, ocr)
    n_shards = (n + per_shard - 1) // per_shard
    m = RatioManifest(
        name="bench",
        stage="s1",
        code_version="bench",
        seed=0,
        recipe=RecipeRecord(text=text, digest=hashlib.sha256(text.encode()).hexdigest()),
        tokenizer=TokenizerRecord(path="tok", digest="0" * 64),
        image_tokens=ImageTokenRule(),
        inputs=[],
        sources=[
            SourceFunnel(source=s, category=c, input=n, kept=n // 4, dropped=n - n // 4)
            for c, s in CATS.items()
        ],
        funnel=[
            FunnelEntry(
                source=s, stage="filter", op="image_size", reason="too_small", count=threshold * 10
            )
            for s in CATS.values()
        ],
        dedup=DedupStats(),
        mixture=MixtureRecord(
            unit="samples", budget=n, max_repeat=1, shortfall="fail", categories=mixes
        ),
        shards=[
            ShardRecord(
                name=f"s1-{i:06d}.tar",
                bytes=1,
                samples=per_shard,
                sha256=hashlib.sha256(f"{i}-{threshold}".encode()).hexdigest(),
            )
            for i in range(n_shards)
        ],
        total_samples=n,
        total_image_tokens=int(img.sum()),
        total_text_tokens=int(txt.sum()),
        selected_keys_digest="0" * 64,
    )
    m.save(d / "manifest.json")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1_000_000)
    args = ap.parse_args()
    n = args.samples
    root = Path(tempfile.mkdtemp(prefix="diffbench"))
    try:
        ids = np.arange(n)
        build(root / "A", ids, 32, 0.25)
        churn = n // 20
        build(root / "B", np.concatenate([ids[churn:], np.arange(n, n + churn)]), 64, 0.3)
        mindvl = Path(sys.executable).with_name("mindvl")
        results = {}
        for mode in ("text", "json"):
            cmd = [str(mindvl), "manifest", "diff", str(root / "A"), str(root / "B")] + (
                ["--json"] if mode == "json" else []
            )
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            load = os.getloadavg()[0]
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            assert proc.returncode == 0, proc.stderr
            cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
            results[mode] = {
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "peak_rss_mib": round(r1.ru_maxrss / 1024, 1),
                "load_avg_1m_before": round(load, 1),
            }
        d = json.loads(proc.stdout)
        assert d["samples"]["added"] == churn and d["samples"]["removed"] == churn, d["samples"]
        result = {
            "samples_per_index": n,
            "added": churn,
            "removed": churn,
            "shards_per_manifest": len(d["shards"]["changed"])
            + d["shards"]["unchanged"]
            + len(d["shards"]["removed"]),
            "cli": results,
            "target_s": 10,
            "note": "fresh mindvl process per run (start-up included); cpu_s = user+sys of that process (less sensitive than wall time to other load on the machine); peak RSS is the max over child processes so far (the bench itself spawns no other child)",
            "cpu_count": os.cpu_count(),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = Path(__file__).parent / "results" / "manifest_diff.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

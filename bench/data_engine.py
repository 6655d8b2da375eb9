"""End-to-end data-engine throughput on Ray vs. the decode+pHash ceiling of the same images.

Generates a webdataset corpus with the corpus kit (256-1024 px), then in one run:

1. ceiling: a tight single-process loop doing only decode + pHash of every image (bytes
   preloaded, so no I/O), times the CPUs given to Ray;
2. pipeline: the real build (read tars -> image_decode, image_size, aspect_ratio ->
   dedup -> staging files) on an embedded local Ray with ``--num-cpus`` CPUs.

Before either timed run, an untimed build of one tar starts Ray's worker processes and imports
the operators in them (like ``ray.init``, a one-time cost of a cluster; its seconds are
reported as ``warmup_build_s``). Reports samples/s of both and their ratio (target >= 0.7),
and for the dedup run its precision and recall against the corpus kit's planted duplicates
(``against_truth``, from rejects.parquet and truth.parquet). Also measured in the same run:
the build's own per-image work (``image_features``) in a tight single-process loop, to
separate what the operators cost from what the pipeline around them costs. The machine this runs on is
shared, so CPU seconds (summed over every process of the local Ray) are reported next to
wall time, and the ratio is also given per CPU second.
Usage: uv run python bench/data_engine.py [--n 20000] [--num-cpus 2] [--no-dedup]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import tarfile
import tempfile
import time
from pathlib import Path

OPS = ("image_decode", "image_size", "aspect_ratio")


def images_of(corpus: Path) -> list[bytes]:
    out = []
    for tar in sorted(corpus.rglob("*.tar")):
        with tarfile.open(tar) as tf:
            for m in tf:
                if m.isfile() and m.name.rsplit(".", 1)[-1] in ("jpg", "png", "webp"):
                    out.append(tf.extractfile(m).read())  # type: ignore[union-attr]
    return out


def ceiling(images: list[bytes]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of decode + pHash over all images in this process."""
    import imagehash
    from PIL import Image

    w0, c0 = time.perf_counter(), time.process_time()
    for data in images:
        try:
            with Image.open(io.BytesIO(data)) as im:
                imagehash.phash(im.convert("RGB").convert("L"))
        except Exception:
            pass
    return time.perf_counter() - w0, time.process_time() - c0


def operator_floor(images: list[bytes]) -> tuple[float, float]:
    """(wall, CPU seconds) of the build's own per-image work, ``image_features`` (decode,
    pixel hash, pHash, signature, information, blur), in a tight loop in this process: the
    pipeline's rate with zero Ray/Arrow/staging overhead."""
    from mindvl.data_engine.ops.image_decode import DecodeFailure, image_features

    w0, c0 = time.perf_counter(), time.process_time()
    for data in images:
        with contextlib.suppress(DecodeFailure):
            image_features(data, blur=False)  # the bench recipe has no blur operator
    return time.perf_counter() - w0, time.process_time() - c0


def dedup_quality(rejects: Path, truth: Path) -> dict:
    """Dedup against the corpus kit's planted duplicates (truth.parquet): precision of exact
    and near drops (a drop is right when it and its survivor share a planted group), and the
    recall of planted near copies (the copy ends in its original's group)."""
    import pyarrow.parquet as pq

    from mindvl.common.sample import make_key

    by_key = {make_key("kit", r["id"]): r for r in pq.read_table(truth).to_pylist()}
    rejected = pq.read_table(rejects).to_pylist()
    drops = [r for r in rejected if r["stage"] == "dedup"]
    survivor = {r["key"]: r["dup_survivor"] for r in drops if r["dup_survivor"]}
    gone = {r["key"] for r in rejected if r["stage"] != "dedup"}

    def group(key: str) -> int:
        return by_key[key]["dup_group"] if key in by_key else -1

    out: dict = {}
    for op in ("exact_dedup", "near_dedup"):
        mine = [r for r in drops if r["op"] == op]
        right = sum(group(r["key"]) >= 0 and group(r["key"]) == group(r["dup_survivor"])
                    for r in mine)  # fmt: skip
        out[f"{op}_drops"] = len(mine)
        out[f"{op}_precision"] = round(right / len(mine), 4) if mine else None
    original = {r["dup_group"]: k for k, r in by_key.items() if r["dup_kind"] == "original"}
    found = total = 0
    for key, r in by_key.items():
        orig = original.get(r["dup_group"])
        if not r["dup_kind"].startswith("near") or orig is None or {key, orig} & gone:
            continue
        total += 1
        found += survivor.get(key, key) == survivor.get(orig, orig)
    out["near_recall"] = round(found / total, 4) if total else None
    out["near_planted"] = total
    return out


def tree_cpu_seconds() -> float:
    import psutil

    total = 0.0
    for p in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            t = p.cpu_times()  # children_*: workers that already exited and were reaped
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def recipe_text(corpus: Path, tok: Path, dedup: bool, pattern: str = "*/*.tar") -> str:
    ops = "\n".join(f"  - {{op: {op}}}" for op in OPS)
    dd = "" if dedup else "dedup: {exact: false, near: {enabled: false}}\n"
    return (
        f"name: bench\nstage: s1\ntokenizer: {tok}\n"
        f"sources:\n  - {{name: kit, path: '{corpus}/{pattern}', format: webdataset, category: caption}}\n"
        f"operators:\n{ops}\n{dd}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--no-dedup", action="store_true")
    ap.add_argument("--work", default=None, help="folder for the corpus (default: a temp dir)")
    ap.add_argument("--out", default="bench/results/data_engine.json")
    args = ap.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from mindvl.common.recipe import recipe_from_text
    from mindvl.common.tokenizer_train import train_bpe_tokenizer
    from mindvl.data_engine.pipeline.ray_session import init_ray
    from mindvl.data_engine.pipeline.run import prepare, stream_to_staging
    from mindvl.data_engine.pipeline.staging import finalize_staging
    from mindvl.data_engine.synth.kit import KIT_VERSION, generate_corpus

    work = Path(args.work or tempfile.mkdtemp(prefix="bench_engine_"))
    corpus = work / "corpus"
    t = time.perf_counter()
    if corpus.exists():  # a corpus from --work is reused only if the kit would write it again
        kit = json.loads((corpus / "kit.json").read_text())
        if (kit["version"], kit["n"], kit["seed"]) != (KIT_VERSION, args.n, 7):
            raise SystemExit(f"{corpus} was made by another kit version or n; remove it")
    else:
        generate_corpus(
            corpus, args.n, "webdataset", faults=0.05, seed=7, min_side=256, max_side=1024
        )
    gen_s = time.perf_counter() - t
    tok = work / "tok"
    if not tok.exists():
        train_bpe_tokenizer(["a picture"] * 10, 280, tok)

    images = images_of(corpus)
    ceil_wall, ceil_cpu = ceiling(images)
    per_core = len(images) / ceil_wall
    ceiling_rate = per_core * args.num_cpus
    floor_wall, floor_cpu = operator_floor(images)

    t = time.perf_counter()
    init_ray(None, num_cpus=args.num_cpus, temp_dir=tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    import ray

    ray_start_s = time.perf_counter() - t
    # Warm-up, untimed like ray.init: a build of one tar starts the worker processes and
    # imports the operators there, so neither timed run pays the one-time start-up.
    t = time.perf_counter()
    warm = recipe_from_text(recipe_text(corpus, tok, False, "caption/shard-00000.tar"))
    warm_out = work / "out_warmup" / "_work"
    stream_to_staging(warm, prepare(warm, "bench"), warm_out, {}, echo=lambda _: None)
    warmup_s = time.perf_counter() - t

    def run(dedup: bool) -> dict:
        recipe = recipe_from_text(recipe_text(corpus, tok, dedup))
        plan = prepare(recipe, "bench")
        stages: dict[str, str] = {}
        cpu0, w0 = tree_cpu_seconds(), time.perf_counter()
        out = work / ("out_dedup" if dedup else "out_nodedup") / "_work"
        stats = stream_to_staging(recipe, plan, out, stages, echo=print)
        acc = finalize_staging(out, plan, recipe, stats)
        wall, cpu = time.perf_counter() - w0, tree_cpu_seconds() - cpu0
        samples = sum(s.input for s in acc.sources)
        rate = samples / wall
        return {
            "stages": stages,
            "n_samples": samples,
            "kept": sum(s.kept for s in acc.sources),
            "pipeline_wall_s": round(wall, 2),
            "pipeline_cpu_s_all_processes": round(cpu, 2),
            "pipeline_samples_per_s": round(rate, 1),
            "ratio_wall": round(rate / ceiling_rate, 3),
            "ratio_per_cpu_second": round((samples / cpu) / (len(images) / ceil_cpu), 3),
            "dedup": acc.dedup.model_dump(),
            "against_truth": dedup_quality(out.parent / "rejects.parquet", corpus / "truth.parquet")
            if dedup
            else None,
        }

    variants = [False] if args.no_dedup else [False, True]
    runs = {("with_dedup" if d else "without_dedup"): run(d) for d in variants}
    ray.shutdown()
    main_run = runs.get("with_dedup", runs["without_dedup"])
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other users)",
        "n_images": len(images),
        "image_sides": "256-1024 px (corpus kit, webdataset, 5% faults)",
        "operators": list(OPS),
        "num_cpus": args.num_cpus,
        "ceiling_single_process_images_per_s": round(per_core, 1),
        "ceiling_images_per_s": round(ceiling_rate, 1),
        "ceiling_cpu_s": round(ceil_cpu, 2),
        "image_features_single_process_images_per_s": round(len(images) / floor_wall, 1),
        "image_features_cpu_s": round(floor_cpu, 2),
        "image_features_over_ceiling_cpu": round(floor_cpu / ceil_cpu, 3),
        "target_ratio": 0.7,
        "pipeline_samples_per_s": main_run["pipeline_samples_per_s"],
        "ratio_wall": main_run["ratio_wall"],
        "runs": runs,
        "ray_start_s": round(ray_start_s, 1),
        "warmup_build_s": round(warmup_s, 1),
        "corpus_generation_s": round(gen_s, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

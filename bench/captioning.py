"""Recaptioning throughput with the tiny random Qwen2-VL on CPU, and the cache-hit rerun.

Writes bench/results/captioning.json: captions/s at batch size 1 and at each tried batch
size (the best one is the "tuned" size), then the time of a rerun whose captions all come
from the on-disk cache (zero model calls). One torch thread and CPU (process) time next to
wall time, because the machine this runs on is shared and oversubscribed.
Usage: uv run python bench/captioning.py [--n 64] [--new-tokens 16] [--batches 1,4,8,16,32]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mindvl.common.recipe import CaptionSpec
from mindvl.data_engine.caption import CaptionRunner
from mindvl.data_engine.caption.cache import CACHE_DIR, CaptionCache
from mindvl.data_engine.caption.hf_backend import HFCaptionBackend
from mindvl.data_engine.caption.tiny_model import build_tiny_qwen2vl
from mindvl.data_engine.record import Candidate


def images(n: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        w, h = int(rng.integers(56, 140)), int(rng.integers(56, 140))
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def candidates(data: list[bytes]) -> list[Candidate]:
    return [
        Candidate(
            key=f"k{i}", source="bench", category="caption", raw_id=str(i), images=[b], caption="x"
        )
        for i, b in enumerate(data)
    ]


def timed(runner: CaptionRunner, data: list[bytes]) -> dict[str, float]:
    cands = candidates(data)
    wall, cpu = time.perf_counter(), time.process_time()
    runner.run(cands)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "seconds_wall": round(wall, 3),
        "seconds_cpu": round(cpu, 3),
        "captions_per_s_wall": round(len(data) / wall, 2),
        "captions_per_s_cpu": round(len(data) / cpu, 2),
        "model_calls": runner.stats.model_calls,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--batches", default="1,4,8,16,32")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "captioning.json"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="capbench"))
    model = build_tiny_qwen2vl(tmp / "tiny-qwen2vl")
    backend = HFCaptionBackend(str(model), "cpu")
    data = images(args.n)
    generation = {"max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens}

    def spec(batch: int) -> CaptionSpec:
        return CaptionSpec(
            enabled=True, model=str(model), batch_size=batch, generation=generation, device="cpu",
            categories={"caption": {"prompt": "Describe the image.", "policy": "replace"}},
        )  # fmt: skip

    backend.generate(data[:2], ["warm up"] * 2, generation)
    by_batch = {}
    for b in [int(x) for x in args.batches.split(",")]:
        by_batch[str(b)] = timed(CaptionRunner(spec(b), backend), data)
        print(b, by_batch[str(b)], flush=True)
    tuned = max(by_batch, key=lambda b: by_batch[b]["captions_per_s_cpu"])
    cache_dir = tmp / "work" / CACHE_DIR
    cold = timed(CaptionRunner(spec(int(tuned)), backend, CaptionCache(cache_dir)), data)
    load = time.perf_counter()
    warm_runner = CaptionRunner(spec(int(tuned)), backend, CaptionCache(cache_dir))
    load = time.perf_counter() - load
    warm = timed(warm_runner, data)
    warm["cache_load_seconds"] = round(load, 4)
    result = {
        "what": "tiny random Qwen2-VL (hf backend) on CPU, 1 torch thread; captions of "
        f"{args.new_tokens} new tokens (min=max), {args.n} PNG images 56..140 px",
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "n_images": args.n,
        "new_tokens": args.new_tokens,
        "by_batch_size": by_batch,
        "batch_1_captions_per_s_cpu": by_batch.get("1", {}).get("captions_per_s_cpu"),
        "tuned_batch_size": int(tuned),
        "tuned_captions_per_s_cpu": by_batch[tuned]["captions_per_s_cpu"],
        "speedup_tuned_vs_batch_1_cpu": round(
            by_batch[tuned]["captions_per_s_cpu"] / by_batch["1"]["captions_per_s_cpu"], 2
        ) if "1" in by_batch else None,
        "cold_run_with_cache_write": cold,
        "cache_hit_rerun": warm,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

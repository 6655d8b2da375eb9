"""Forward+backward time of a tiny MindVL on CPU: packed row vs the same samples one by one.

Builds random samples (one 112x112 image = 16 merged tokens + text each), packs them into
one row, and times a training step (forward with summed loss, backward) with the SDPA
block-mask backend; also the sum of one-by-one steps over the same samples. Writes
bench/results/model_step.json. Usage: uv run python bench/model_step.py [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from mindvl.trainer.batch import PackedBatch
from mindvl.trainer.model import MindVL
from mindvl.trainer.model.tiny import pack_samples, random_image_sample, tiny_config

VOCAB, PAD_ID = 512, 5


def sample(gen: torch.Generator, text: int) -> dict:
    return random_image_sample(gen, VOCAB, PAD_ID, text)


def pack(samples: list[dict]) -> PackedBatch:
    return pack_samples(samples, PAD_ID)


def step(model: MindVL, batch: PackedBatch, split: list | None = None) -> float:
    start = time.perf_counter()
    loss = model(batch).loss_sum
    mid = time.perf_counter()
    loss.backward()
    end = time.perf_counter()
    model.zero_grad(set_to_none=True)
    if split is not None:
        split.append((mid - start, end - mid))
    return end - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = MindVL(tiny_config(VOCAB, PAD_ID)).train()
    samples = [sample(gen, 20 + 7 * i) for i in range(args.samples)]
    packed = pack(samples)
    step(model, packed)  # warm-up
    split: list = []
    packed_s = [step(model, packed, split) for _ in range(args.repeat)]
    single_s = [sum(step(model, pack([s])) for s in samples) for _ in range(args.repeat)]
    result = {
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
        "params": sum(p.numel() for p in model.parameters()),
        "samples": args.samples,
        "row_tokens": packed.real_tokens,
        "images": args.samples,
        "packed_step_ms_median": round(1000 * statistics.median(packed_s), 1),
        "packed_forward_ms_median": round(1000 * statistics.median(f for f, _ in split), 1),
        "packed_backward_ms_median": round(1000 * statistics.median(b for _, b in split), 1),
        "one_by_one_step_ms_median": round(1000 * statistics.median(single_s), 1),
        "repeat": args.repeat,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    out = Path(__file__).parent / "results" / "model_step.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

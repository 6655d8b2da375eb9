"""Memory kept for backward and step time per activation-checkpointing mode (CPU).

The demo's ``small`` MindVL (scaled up with ``--llm-layers``/``--hidden``) on one packed
row of random 112x112-image samples; for each mode (none, selective, full, applied to the
vision blocks and decoder layers) it measures the bytes a forward leaves alive for backward
(``live_bytes_after``) and the median forward+backward time, and checks the loss against
``none``. Writes bench/results/activation_checkpointing.json.
Usage: uv run python bench/activation_checkpointing.py [--samples 16] [--repeat 3]
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

from mindvl.trainer.device.activation_checkpoint import (
    MODES,
    apply_activation_checkpointing,
    live_bytes_after,
)
from mindvl.trainer.model import MindVL
from mindvl.trainer.model.tiny import pack_samples, random_image_sample, small_config

VOCAB, PAD_ID = 512, 5


def build(mode: str, layers: int, hidden: int) -> MindVL:
    config = small_config(VOCAB, PAD_ID)
    llm = {**config.llm, "num_hidden_layers": layers, "hidden_size": hidden,
           "intermediate_size": 2 * hidden}  # fmt: skip
    torch.manual_seed(0)
    model = MindVL(config.model_copy(update={"llm": llm})).train()
    apply_activation_checkpointing(model, {"vision": mode, "llm": mode})
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--llm-layers", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=192)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    batch = pack_samples(
        [random_image_sample(gen, VOCAB, PAD_ID, 40 + 5 * i) for i in range(args.samples)], PAD_ID
    )
    results = {}
    for mode in MODES:
        model = build(mode, args.llm_layers, args.hidden)
        out, kept = live_bytes_after(lambda model=model: model(batch))
        out.loss_sum.backward()
        loss = float(out.loss_sum.detach())
        times = []
        for _ in range(args.repeat):
            model.zero_grad(set_to_none=True)
            start = time.perf_counter()
            model(batch).loss_sum.backward()
            times.append(time.perf_counter() - start)
        results[mode] = {"kept_mb": kept / 2**20, "step_s": statistics.median(times), "loss": loss}
        print(mode, results[mode], flush=True)
    base = results["none"]
    for mode, r in results.items():
        r["kept_vs_none"] = r["kept_mb"] / base["kept_mb"]
        r["time_vs_none"] = r["step_s"] / base["step_s"]
        assert r["loss"] == base["loss"], mode
    doc = {
        "what": "bytes kept from forward to backward, fwd+bwd time, per checkpointing mode",
        "row_tokens": batch.real_tokens,
        "images": len(batch.image_grid_thw),
        "llm_layers": args.llm_layers,
        "llm_hidden": args.hidden,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "load_avg_1m": os.getloadavg()[0],
        "results": results,
    }
    out_path = Path(__file__).parent / "results" / "activation_checkpointing.json"
    out_path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()

"""Peak RSS per rank of loading a ~100M-parameter MindVL on 2 gloo ranks (CPU, FSDP2):
meta-device build + per-rank sliced loading vs every rank building the full model first.

Each variant runs in fresh processes; a rank reports its RSS after imports (``base``) and
its peak RSS once the model is loaded and sharded (``peak``, VmHWM). The full
model's fp32 state is the reference the per-rank increase is compared with.

    nice -n 10 uv run python bench/meta_init_rss.py [--out bench/results/meta_init_rss.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

LLM = {
    "model_type": "qwen3", "vocab_size": 32000, "hidden_size": 768, "intermediate_size": 2048,
    "num_hidden_layers": 12, "num_attention_heads": 12, "num_key_value_heads": 4,
    "head_dim": 64, "max_position_embeddings": 4096, "tie_word_embeddings": True,
}  # fmt: skip
VISION = {
    "depth": 4, "hidden_size": 256, "intermediate_size": 1024, "num_heads": 4,
    "out_hidden_size": 256, "fullatt_block_indexes": [3], "window_size": 112,
}  # fmt: skip


def config():
    from mindvl.trainer.model import MindVLConfig

    return MindVLConfig(vision=VISION, llm=LLM, projector_hidden=1024, image_pad_token_id=5)


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mib() -> float:
    return _status_mib("VmRSS")


def peak_mib() -> float:
    """This process's peak RSS (VmHWM; ``ru_maxrss`` would survive the spawn's exec and
    report the parent's peak)."""
    return _status_mib("VmHWM")


def _rank(rank: int, world: int, port: int, variant: str, model_dir: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from mindvl.trainer.device.materialize import build_on_meta, materialise
    from mindvl.trainer.device.mesh import build_mesh, resolve
    from mindvl.trainer.device.parallel import parallelize
    from mindvl.trainer.model import MindVL
    from mindvl.trainer.stage_config import ParallelSpec

    dist.init_process_group("gloo", rank=rank, world_size=world)
    dist.barrier()
    base, t0 = rss_mib(), time.perf_counter()
    cpu = torch.device("cpu")
    dims = resolve(ParallelSpec(), "fsdp", world)
    mesh = build_mesh("cpu", dims)
    if variant == "full_then_shard":  # every rank holds the whole model first
        model = parallelize(MindVL.from_pretrained(model_dir), dims, mesh, cpu)
    else:
        cfg = config()
        weights = model_dir if variant == "meta_load" else None

        def fill(module) -> None:
            materialise(module, build_on_meta(cfg), cpu, seed=0, weights=weights)

        model = parallelize(build_on_meta(cfg), dims, mesh, cpu, fill=fill)
    local = sum(p.to_local().numel() * p.element_size() for p in model.parameters())
    dist.barrier()
    row = {
        "rank": rank, "variant": variant, "base_rss_mib": round(base, 1),
        "peak_rss_mib": round(peak_mib(), 1), "peak_increase_mib": round(peak_mib() - base, 1),
        "local_param_mib": round(local / 2**20, 1), "seconds": round(time.perf_counter() - t0, 2),
    }  # fmt: skip
    Path(out, f"{variant}-{rank}.json").write_text(json.dumps(row))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/meta_init_rss.json")
    args = ap.parse_args()
    from mindvl.trainer.model import MindVL

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        model = MindVL.from_config(config())
        n_params = sum(p.numel() for p in model.parameters())
        full_mib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
        model.save_pretrained(model_dir)
        del model
        rows = []
        for variant in ("full_then_shard", "meta_load", "meta_random_init"):
            mp.start_processes(
                _rank, args=(2, _free_port(), variant, str(model_dir), tmp), nprocs=2,
                start_method="spawn",
            )  # fmt: skip
            rows += [json.loads(Path(tmp, f"{variant}-{r}.json").read_text()) for r in range(2)]
    result = {
        "params": n_params,
        "full_state_fp32_mib": round(full_mib, 1),
        "world": 2,
        "backend": "gloo (CPU), FSDP2",
        "torch": torch.__version__,
        "load_average": os.getloadavg()[0],
        "ranks": rows,
        "max_increase_over_full_state": {
            v: round(max(r["peak_increase_mib"] for r in rows if r["variant"] == v) / full_mib, 3)
            for v in ("full_then_shard", "meta_load", "meta_random_init")
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)


if __name__ == "__main__":
    main()

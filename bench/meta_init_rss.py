"""Peak RSS per rank of loading a ~100M-parameter MindVL on gloo ranks (CPU) under
FSDP2 (2 ranks), TP=2 (2 ranks) and FSDP2 x TP2 (4 ranks): meta-device build + per-rank
sliced loading or seeded random init vs every rank building the full model first.

Each variant runs in fresh processes; a rank reports its RSS after imports (``base``) and
its peak RSS once the model is loaded and sharded (``peak``, VmHWM). The full
model's fp32 state is the reference the per-rank increase is compared with. Only the
layouts named are run; the others keep their entry (its own date and load) in ``--out``.

    nice -n 10 uv run python bench/meta_init_rss.py [--layouts fsdp2,tp2,fsdp2xtp2]
        [--out bench/results/meta_init_rss.json]
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
# layout name -> (parallel block, old `distributed` spelling, world size)
LAYOUTS = {
    "fsdp2": ({}, "fsdp", 2),
    "tp2": ({"tp": 2}, None, 2),
    "fsdp2xtp2": ({"dp_shard": 2, "tp": 2}, None, 4),
}
VARIANTS = ("full_then_shard", "meta_load", "meta_random_init")
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


def _rank(rank: int, layout: str, port: int, variant: str, model_dir: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import torch.distributed as dist

    from mindvl.trainer.device.materialize import build_on_meta, materialise
    from mindvl.trainer.device.mesh import build_mesh, resolve
    from mindvl.trainer.device.parallel import parallelize
    from mindvl.trainer.model import MindVL
    from mindvl.trainer.stage_config import ParallelSpec

    spec, distributed, world = LAYOUTS[layout]
    dist.init_process_group("gloo", rank=rank, world_size=world)
    dist.barrier()
    base, t0 = rss_mib(), time.perf_counter()
    cpu = torch.device("cpu")
    dims = resolve(ParallelSpec(**spec), distributed, world)
    mesh = build_mesh("cpu", dims)
    if variant == "full_then_shard":  # every rank holds the whole model first
        model = parallelize(MindVL.from_pretrained(model_dir), dims, mesh, cpu)
    else:
        cfg = config()
        weights = model_dir if variant == "meta_load" else None

        def fill(module) -> None:
            materialise(module, build_on_meta(cfg), cpu, seed=0, weights=weights)

        model = parallelize(build_on_meta(cfg), dims, mesh, cpu, fill=fill)
    held = [p.to_local() if hasattr(p, "to_local") else p for p in model.parameters()]
    local = sum(t.numel() * t.element_size() for t in held)
    dist.barrier()
    row = {
        "rank": rank, "layout": layout, "variant": variant, "base_rss_mib": round(base, 1),
        "peak_rss_mib": round(peak_mib(), 1), "peak_increase_mib": round(peak_mib() - base, 1),
        "local_param_mib": round(local / 2**20, 1), "seconds": round(time.perf_counter() - t0, 2),
    }  # fmt: skip
    Path(out, f"{layout}-{variant}-{rank}.json").write_text(json.dumps(row))
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/meta_init_rss.json")
    ap.add_argument("--layouts", default=",".join(LAYOUTS), help="comma-separated")
    args = ap.parse_args()
    from mindvl.trainer.model import MindVL

    out = Path(args.out)
    # layouts not run now keep their last measurement (each entry has its own load and date)
    result = json.loads(out.read_text()) if out.is_file() else {}
    layouts = result.get("layouts", {})
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        model = MindVL.from_config(config())
        n_params = sum(p.numel() for p in model.parameters())
        full_mib = n_params * 4 / 2**20
        model.save_pretrained(model_dir)
        del model
        for layout in args.layouts.split(","):
            world = LAYOUTS[layout][2]
            rows = []
            for variant in VARIANTS:
                mp.start_processes(
                    _rank, args=(layout, _free_port(), variant, str(model_dir), tmp),
                    nprocs=world, start_method="spawn",
                )  # fmt: skip
                rows += [
                    json.loads(Path(tmp, f"{layout}-{variant}-{r}.json").read_text())
                    for r in range(world)
                ]
            layouts[layout] = {
                "parallel": LAYOUTS[layout][0] or {"distributed": "fsdp"},
                "world": world,
                "date": time.strftime("%Y-%m-%d", time.gmtime()),
                "load_average": round(os.getloadavg()[0], 2),
                "max_increase_over_full_state": {
                    v: round(
                        max(r["peak_increase_mib"] for r in rows if r["variant"] == v) / full_mib, 3
                    )
                    for v in VARIANTS
                },
                "ranks": rows,
            }
    result = {
        "params": n_params,
        "full_state_fp32_mib": round(full_mib, 1),
        "backend": "gloo (CPU)",
        "torch": torch.__version__,
        "layouts": layouts,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)


if __name__ == "__main__":
    main()

"""MoE MindVL training steps on CPU: EP=1 vs EP=2 (gloo), grouped vs per-expert-loop expert
matmuls, and a dense model of equal active size as the reference, all in one run.

The model: the tiny Qwen2.5-VL tower + projector and a qwen3_moe LLM (hidden 128, 4 layers,
8 experts of 128, top-2); the dense reference has the same attention and an MLP of
2 x 128 = 256 (the same active parameters per token). Each measurement is a full
training step (forward with the router losses, backward, AdamW) on packed rows of random
samples (one 112x112 image + text each). Tokens/s counts real LLM tokens of all ranks.

* ``dense`` and ``moe_ep1_<impl>``: one process, ``experts_implementation`` ``eager``
  (transformers' loop over the experts hit) and ``grouped_mm`` (one grouped matmul);
* ``moe_ep2``: 2 gloo processes with ``parallel.ep = 2`` (FSDP2 + all-to-all dispatch,
  then a loop over this rank's experts), each on its own rows: the same
  global batch per step as EP=1, on twice the cores (one thread per process throughout);
* ``dense_tp2`` and ``moe_tp2``: 2 gloo processes with ``parallel.tp = 2`` (tensor +
  sequence parallelism; the MoE blocks route each rank's own half of the row, their
  gradients summed over tp), both on the same rows: the EP=1 global batch on twice the
  cores. ``moe_tp2`` over ``dense_tp2`` is what the MoE blocks cost under TP.

Writes bench/results/moe.json. Usage: uv run python bench/moe.py [--steps N] [--rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

from mindvl.trainer.model import MindVL
from mindvl.trainer.model.moe import parameter_counts
from mindvl.trainer.model.tiny import pack_samples, random_image_sample, tiny_config

VOCAB, PAD_ID = 512, 5
LLM = {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
       "num_key_value_heads": 2, "head_dim": 32}  # fmt: skip
MOE = {"model_type": "qwen3_moe", "num_experts": 8, "num_experts_per_tok": 2,
       "moe_intermediate_size": 128, "router_aux_loss_coef": 0.01}  # fmt: skip


def build(kind: str, impl: str = "eager") -> MindVL:
    config = tiny_config(VOCAB, PAD_ID)
    llm = {**config.llm, **LLM}
    if kind == "moe":
        llm.update(MOE)
    else:
        llm["intermediate_size"] = MOE["num_experts_per_tok"] * MOE["moe_intermediate_size"]
    torch.manual_seed(0)
    model = MindVL(config.model_copy(update={"llm": llm})).train()
    model.llm.config._experts_implementation = impl
    return model


def rows(n: int, rank: int) -> list:
    gen = torch.Generator().manual_seed(1000 + rank)
    return [
        pack_samples(
            [random_image_sample(gen, VOCAB, PAD_ID, 80 + 20 * j) for j in range(4)], PAD_ID
        )
        for _ in range(n)
    ]


def train_steps(model, optimizer, batches: list, steps: int, world: int, tp: bool = False):
    """Seconds per step (first step excluded: warm-up); ``world``: data-parallel ranks."""
    from mindvl.trainer.device.tensor_parallel import sum_partial_grads, vocab_parallel_loss

    times = []
    tokens = sum(b.real_tokens for b in batches) * world
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        for b in batches:
            with vocab_parallel_loss(tp):
                out = model(b)
                loss = out.loss_sum / tokens
                if out.router is not None:
                    loss = loss + 0.01 * out.router.aux_sum / tokens
                loss.backward()
        if tp:
            sum_partial_grads(model)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return times[1:]


def single(kind: str, impl: str, n_rows: int, steps: int) -> dict:
    model = build(kind, impl)
    batches = rows(n_rows, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = train_steps(model, opt, batches, steps, 1)
    total, active = parameter_counts(model, model.llm)
    tokens = sum(b.real_tokens for b in batches)
    return {"params_total": total, "params_active": active,
            "step_s_median": round(statistics.median(times), 4),
            "tokens_per_s": round(tokens / statistics.median(times), 1)}  # fmt: skip


def _parallel_rank(rank: int, port: int, kind: str, layout: dict, n_rows, steps, out) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    from mindvl.trainer.device.mesh import build_mesh, resolve
    from mindvl.trainer.device.parallel import parallelize
    from mindvl.trainer.stage_config import ParallelSpec

    dims = resolve(ParallelSpec(**layout), None, 2)
    model = parallelize(build(kind), dims, build_mesh("cpu", dims), torch.device("cpu"))
    tp = dims.tp > 1  # the tp ranks share their rows
    batches = rows(n_rows // dims.dp, 0 if tp else rank)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = train_steps(model, opt, batches, steps, dims.dp, tp)
    tokens = torch.tensor(float(sum(b.real_tokens for b in batches)))
    if not tp:
        torch.distributed.all_reduce(tokens)
    if rank == 0:
        median = statistics.median(times)
        Path(out).write_text(json.dumps({"step_s_median": round(median, 4),
                                         "tokens_per_s": round(float(tokens) / median, 1)}))  # fmt: skip
    torch.distributed.destroy_process_group()


def two_ranks(kind: str, layout: dict, n_rows: int, steps: int) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = Path(f"/tmp/mindvl-bench-moe-{os.getpid()}.json")
    mp.start_processes(_parallel_rank, args=(port, kind, layout, n_rows, steps, str(out)),
                       nprocs=2, start_method="fork")  # fmt: skip
    result = json.loads(out.read_text())
    out.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rows", type=int, default=4, help="packed rows per step (global)")
    args = parser.parse_args()
    # one thread per process everywhere: on a shared 2-core machine two OpenMP threads
    # contend with the other jobs and time noise, not the model
    torch.set_num_threads(1)
    runs = {"dense": single("dense", "eager", args.rows, args.steps)}
    for impl in ("eager", "grouped_mm"):
        runs[f"moe_ep1_{impl}"] = single("moe", impl, args.rows, args.steps)
    runs["moe_ep2"] = two_ranks("moe", {"ep": 2}, args.rows, args.steps)
    runs["moe_ep2"]["tokens_per_s_per_process"] = round(runs["moe_ep2"]["tokens_per_s"] / 2, 1)
    for kind in ("dense", "moe"):
        runs[f"{kind}_tp2"] = two_ranks(kind, {"tp": 2}, args.rows, args.steps)
    ref = runs["dense"]["tokens_per_s"]
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}",
        "device": "cpu (gloo)",
        "steps": args.steps,
        "rows_per_step": args.rows,
        "runs": runs,
        "tokens_per_s_vs_dense": {k: round(v["tokens_per_s"] / ref, 3) for k, v in runs.items()},
        "moe_tp2_vs_dense_tp2": round(
            runs["moe_tp2"]["tokens_per_s"] / runs["dense_tp2"]["tokens_per_s"], 3
        ),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    out = Path(__file__).parent / "results" / "moe.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""The training loop of one stage: packed micro-batches -> summed loss -> AdamW steps.

**Loss normalisation.** The model returns the *sum* of token cross-entropies of a packed
row and its loss-token count. Before any backward pass of a step, the loop counts the loss
tokens of all its micro-batches and all-reduces that count over ranks (``N``). Each
micro-batch then back-propagates ``loss_sum * world / N``: DDP and FSDP average gradients
over ranks (divide by ``world``), so the applied gradient is exactly
``sum over every loss token of the global batch / N`` — a token mean over the global batch,
independent of how samples were packed, split into micro-batches or spread over ranks.
The logged loss is the all-reduced loss sum over ``N``. MoE LLMs add their router losses
(balancing, z-loss) normalised by the global batch's real-token count the same way
(:mod:`mindvl.trainer.moe_training`); ``loss`` is then the whole objective and
``ce_loss``/``aux_loss``/``z_loss`` its parts.

The step's micro-batches come from the rank's logical data streams in round robin, so the
global batch is a function of the data and ``data.streams`` only: 1 process with 2 streams
and 2 micro-batches trains on the same global batch as 2 processes with 1 each.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch

from mindvl.common.config import load_model
from mindvl.common.errors import UserError
from mindvl.trainer.checkpoint import (
    check_layout_version,
    latest_checkpoint,
    load_training_state,
    start_checkpoint,
)
from mindvl.trainer.data.loader import PackedLoader
from mindvl.trainer.data.packing import PackBudget
from mindvl.trainer.data.stream import StageData, StreamSettings
from mindvl.trainer.device.materialize import materialise
from mindvl.trainer.device.mesh import check_layout
from mindvl.trainer.device.parallel import clip_gradients, no_grad_sync, parallelize
from mindvl.trainer.export import export_checkpoint
from mindvl.trainer.metrics import MetricsWriter
from mindvl.trainer.model.moe import parameter_counts
from mindvl.trainer.moe_training import MoETraining
from mindvl.trainer.runtime import Runtime, start_runtime
from mindvl.trainer.stage_config import StageConfig
from mindvl.trainer.trainable import apply_trainable, check_optimizer_covers


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def model_config(cfg: StageConfig, data: StageData, ckpt: Path | None):
    """The stage model's config and the model dir its weights come from (None: random init
    or, with ``ckpt``, the step checkpoint)."""
    from mindvl.trainer.model import MindVLConfig
    from mindvl.trainer.model.checkpoint_io import read_config

    source = Path(cfg.init.checkpoint) if cfg.init.checkpoint else None
    if ckpt is not None:
        mc, source = read_config(ckpt), None
    elif source is not None:
        mc = read_config(source)
    else:
        spec = cfg.init.config
        from mindvl.trainer.model.tiny import PRESETS

        if isinstance(spec, str) and spec in PRESETS:
            tok = data.tokenizer
            eos = tok.hf.convert_tokens_to_ids("<|endoftext|>")
            mc = PRESETS[spec](len(tok.hf), tok.image_pad_id, eos_token_id=eos)
        elif isinstance(spec, str):  # a YAML or JSON file
            mc = load_model(spec, MindVLConfig)
        else:
            mc = MindVLConfig.model_validate(spec)
    if mc.image_pad_token_id != data.tokenizer.image_pad_id:
        raise UserError(
            f"model image_pad_token_id {mc.image_pad_token_id} differs from the "
            f"tokenizer's <|image_pad|> id {data.tokenizer.image_pad_id}"
        )
    return mc, source


def build_model(cfg: StageConfig, data: StageData, ckpt: Path | None):
    """(model, template) on the meta device, and the model dir to read weights from."""
    from mindvl.trainer.device.materialize import build_on_meta

    mc, source = model_config(cfg, data, ckpt)
    dtype = getattr(torch, mc.dtype) if (source or ckpt) else None
    return build_on_meta(mc, dtype), build_on_meta(mc, dtype), source


def lr_lambda(cfg: StageConfig, total: int):
    """Linear warmup to ``lr``, then cosine to ``lr * min_lr_ratio`` at the last step."""
    warm, floor = cfg.schedule.warmup_steps, cfg.schedule.min_lr_ratio

    def f(step: int) -> float:  # step = optimizer steps taken so far
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def make_optimizer(model: torch.nn.Module, cfg: StageConfig) -> torch.optim.Optimizer:
    o = cfg.optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": o.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=o.lr, betas=o.betas, eps=o.eps)


def run_stage(
    cfg: StageConfig, out: str | Path, resume: bool = False, config_text: str = ""
) -> list[dict]:
    """Train one stage into ``out``; returns the metric rows this process logged."""
    out = Path(out)
    rt = start_runtime(cfg.device)
    try:
        return _run(cfg, out, resume, config_text, rt)
    finally:
        rt.close()


def _run(cfg: StageConfig, out: Path, resume: bool, config_text: str, rt: Runtime) -> list[dict]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    data = StageData.open(
        cfg.data.manifest, cfg.data.tokenizer, verify=cfg.data.verify and rt.rank == 0
    )
    ckpt = latest_checkpoint(out) if resume else None
    if resume and ckpt is None and rt.rank == 0:
        print(f"no checkpoint under {out}; starting from the beginning", flush=True)
    if ckpt is not None:
        check_layout_version(ckpt)
    core, template, weights = build_model(cfg, data, ckpt)
    table = apply_trainable(core, cfg.trainable)
    if rt.rank == 0:
        print(table, flush=True)
        total_params, active_params = parameter_counts(core, core.llm)
        print(f"parameters: {total_params:,} total, {active_params:,} active per token", flush=True)
    from mindvl.trainer.device.attention import apply_attention_backend, default_backend_name

    apply_attention_backend(core, default_backend_name(rt.device))
    if rt.distributed and cfg.distributed == "none":
        raise UserError(f"{rt.world} processes need distributed: ddp or fsdp in the stage config")
    strategy = cfg.distributed if rt.distributed else "none"
    experts = core.moe.num_experts if core.moe is not None else None
    layout = check_layout(rt.world, cfg.parallel.ep, strategy, experts)
    # bf16: FSDP2 casts parameters itself (its compute dtype); otherwise autocast
    fsdp = strategy == "fsdp"
    # meta -> parallelised -> each rank materialises its own pieces (device/materialize.py);
    # DDP copies rank 0's weights at wrapping, so it wraps a materialised model
    fill = {"seed": cfg.seed, "weights": weights, "init": ckpt is None}
    if not fsdp:
        materialise(core, template, rt.device, **fill)
    model = parallelize(core, strategy, rt.device, cfg.precision if fsdp else "fp32", True, layout)
    if fsdp:
        materialise(model, template, rt.device, **fill)
    del template
    moe = MoETraining(cfg.moe, core) if core.moe is not None else None
    if moe is not None and rt.rank == 0:
        print(moe.describe(), flush=True)
    autocast_bf16 = cfg.precision == "bf16" and not fsdp
    optimizer = make_optimizer(model, cfg)
    check_optimizer_covers(model, optimizer)
    micro = cfg.micro_batches(rt.world)
    total_tokens = data.manifest.total_image_tokens + data.manifest.total_text_tokens
    total = cfg.total_steps(total_tokens)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg, total))
    streams = cfg.data.streams or rt.world * max(1, cfg.data.num_workers)
    settings = StreamSettings(
        PackBudget(cfg.seq_len, cfg.packing.vit_patch_budget),
        cfg.packing.buffer_size,
        cfg.packing.max_wait,
        cfg.seed,
    )
    loader = PackedLoader(data, settings, rt.rank, rt.world, streams, cfg.data.num_workers)
    step, seen = 0, 0
    if ckpt is not None:
        state, loader_states = load_training_state(
            ckpt, model, optimizer, scheduler, rt.rank, rt.world
        )
        loader.load_rank_states(loader_states)
        step, seen = state["step"], state["tokens_seen"]
        if rt.rank == 0:
            print(f"resumed from {ckpt} at step {step}", flush=True)
    digest = hashlib.sha256(config_text.encode()).hexdigest()[:16]
    if ckpt is not None and rt.rank == 0 and state.get("config_digest") != digest:
        print("warning: the stage config differs from the checkpoint's", flush=True)
    writer = MetricsWriter(
        out, rt.rank == 0, cfg.tensorboard, truncate_after=step if ckpt else None
    )
    from mindvl.trainer.model import InferenceConfig

    inference = InferenceConfig(image_tokens=data.manifest.image_tokens)
    from mindvl.trainer.model.checkpoint_io import write_model_meta

    def write_meta(path: Path) -> None:
        write_model_meta(core, path, data.tokenizer.hf, inference)

    from mindvl.trainer.model import count_loss_tokens

    # background saves (model, optimizer) talk on gloo groups of their own: DCP's async save
    # needs a CPU backend, and concurrent collectives on one group would interleave
    background = None
    if cfg.checkpoint_async:
        new_group = torch.distributed.new_group
        background = (
            (new_group(backend="gloo"), new_group(backend="gloo")) if rt.distributed else True
        )
    pending = None
    rows: list[dict] = []
    batches = iter(loader)
    model.train()
    try:
        while step < total:
            t0 = time.perf_counter()
            packs = [next(batches) for _ in range(micro)]
            local = sum(count_loss_tokens(b.labels, b.cu_seqlens) for b in packs)
            local_real = sum(b.real_tokens for b in packs)
            n_loss, n_real = rt.all_reduce_sum([float(local), float(local_real)])
            if n_loss == 0:
                raise RuntimeError(f"step {step + 1}: no loss tokens in the global batch")
            scale = rt.world / n_loss
            loss_sum = 0.0
            for i, b in enumerate(packs):
                with no_grad_sync(model, enabled=i < micro - 1):
                    with torch.autocast(rt.device.type, torch.bfloat16, enabled=autocast_bf16):
                        outp = model(b.to(rt.device))
                    objective = outp.loss_sum * scale
                    if moe is not None:
                        objective = objective + moe.objective(outp.router) * (rt.world / n_real)
                    objective.backward()  # backward outside autocast
                loss_sum += float(outp.loss_sum.detach())
            grad_norm = clip_gradients(model, cfg.optimizer.grad_clip, layout.ep > 1)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            moe_fields = moe.finish_step(rt.all_reduce_sum, n_real) if moe is not None else {}
            step += 1
            real = sum(b.real_tokens for b in packs)
            patches = sum(
                0 if b.image_grid_thw is None else int(b.image_grid_thw.prod(-1).sum())
                for b in packs
            )
            n_samples = sum(len(b.sample_keys) for b in packs)
            g = rt.all_reduce_sum([loss_sum, real, patches, n_samples, len(packs)])
            seen += int(g[1])
            dt = time.perf_counter() - t0
            row = {
                "step": step,
                "loss": g[0] / n_loss,
                "lr": lr,
                "grad_norm": grad_norm,
                "loss_tokens": int(n_loss),
                "llm_tokens": int(g[1]),
                "vit_tokens": int(g[2]),
                "tokens_per_s": g[1] / dt,
                "padding": 1 - g[1] / (g[4] * cfg.seq_len),
                "samples_per_pack": g[3] / g[4],
                "step_s": dt,
                "tokens_seen": seen,
            }
            if moe is not None:
                row["ce_loss"] = row["loss"]
                row["loss"] = moe.total_loss(row["ce_loss"], moe_fields)
                row.update(moe_fields)
            rows.append(row)
            if step % cfg.log_every == 0 or step == total:
                writer.log(row, total)
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == total:
                trainer_state = {
                    "step": step,
                    "tokens_seen": seen,
                    "config_digest": digest,
                    "total_steps": total,
                    "stage": cfg.name,
                    "init_checkpoint": cfg.init.checkpoint,
                }
                if pending is not None:  # the previous background save
                    ckpt = pending.commit()
                pending = start_checkpoint(
                    out, step, model, optimizer, scheduler, loader.state_dict(),
                    trainer_state, rt.rank, rt.world, cfg.keep_checkpoints, write_meta,
                    background,
                )  # fmt: skip
                if background is None:
                    ckpt, pending = pending.commit(), None
        if pending is not None:
            ckpt = pending.commit()
        if rt.rank == 0:  # the last step's checkpoint, consolidated one tensor at a time
            export_checkpoint(ckpt, out / "model")
            from mindvl.trainer.provenance import write_provenance

            write_provenance(
                out / "model", parent=cfg.init.checkpoint, stage=cfg.name,
                trained={"seq_len": cfg.seq_len, "steps": step, "tokens_seen": seen,
                         "manifest": str(cfg.data.manifest)},
            )  # fmt: skip
            drops = loader.drops()
            (out / "run.json").write_text(
                json.dumps({"steps": step, "tokens_seen": seen, "drops": drops}, indent=2)
            )
    finally:
        writer.close()
    return rows

"""The training run of one stage: model, layout, data and resume set up, then
:class:`~mindvl.trainer.train_step.TrainStep` step after step (loss normalisation, micro-
batches, clipping and the optimizer step are there), with the learning-rate schedule,
metrics logging and the checkpoint cadence here.

The step's micro-batches come from the rank's logical data streams in round robin, so the
global batch is a function of the data and ``data.streams`` only: 1 process with 2 streams
and 2 micro-batches trains on the same global batch as 2 processes with 1 each.
"""

from __future__ import annotations

import hashlib
import json
import random
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
from mindvl.trainer.device.pipeline import Pipeline
from mindvl.trainer.export import export_checkpoint
from mindvl.trainer.flops import FlopsModel, device_name, peak_tflops
from mindvl.trainer.layout import lay_out
from mindvl.trainer.metrics import MetricsWriter
from mindvl.trainer.model.moe import parameter_counts
from mindvl.trainer.moe_training import MoETraining
from mindvl.trainer.optimizer import lr_lambda, make_optimizer
from mindvl.trainer.runtime import Runtime, start_runtime
from mindvl.trainer.stage_config import StageConfig
from mindvl.trainer.train_step import TrainStep
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
    # before the pipeline split (every layer's router); it looks the bias buffers up at use
    moe = MoETraining(cfg.moe, core) if core.moe is not None else None
    if rt.rank == 0:
        print(table, flush=True)
        total_params, active_params = parameter_counts(core, core.llm)
        print(f"parameters: {total_params:,} total, {active_params:,} active per token", flush=True)
        if moe is not None:
            print(moe.describe(), flush=True)
    from mindvl.trainer.device.attention import apply_attention_backend, default_backend_name

    flops_model = FlopsModel.from_model(core)  # shapes only: counted on meta, before sharding
    peak = peak_tflops(cfg.peak_tflops, device_name(rt.device), cfg.precision)
    apply_attention_backend(core, default_backend_name(rt.device))

    # meta -> parallelised (TP, FSDP2, expert slices, pipeline stages) -> each rank
    # materialises its own pieces (device/materialize.py); DDP wraps a materialised model
    fill_args = {"seed": cfg.seed, "weights": weights, "init": ckpt is None}

    def fill(module) -> None:
        materialise(module, template, rt.device, **fill_args)

    dims, mesh, model = lay_out(cfg, core, rt, fill)
    optimizer = make_optimizer(model, cfg.optimizer)
    check_optimizer_covers(model, optimizer, allow_none=dims.pp > 1)
    micro = cfg.micro_batches(dims.dp)
    pipe = None
    if dims.pp > 1:
        pipe = Pipeline(model, mesh, rt.device, cfg.parallel.pp_schedule, micro)
    total_tokens = data.manifest.total_image_tokens + data.manifest.total_text_tokens
    total = cfg.total_steps(total_tokens)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.schedule, total))
    train_step = TrainStep(
        cfg.optimizer, cfg.seq_len, rt, dims, mesh, model, optimizer, scheduler, micro,
        flops_model, peak, moe, pipe,
        autocast_bf16=cfg.precision == "bf16" and not dims.sharded,
    )  # fmt: skip
    streams = cfg.data.streams or dims.dp * max(1, cfg.data.num_workers)
    settings = StreamSettings(
        PackBudget(cfg.seq_len, cfg.packing.vit_patch_budget),
        cfg.packing.buffer_size,
        cfg.packing.max_wait,
        cfg.seed,
    )
    loader = PackedLoader(
        data, settings, dims.dp_rank(rt.rank), dims.dp, streams, cfg.data.num_workers
    )
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

    def write_meta(path: Path) -> None:  # from the whole meta template: stages lack parts
        write_model_meta(template, path, data.tokenizer.hf, inference)

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
            row = train_step(batches, step + 1, seen)
            step, seen = row["step"], row["tokens_seen"]
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
                    # which global ranks share a loader (checkpoint.load_training_state)
                    "dp_ranks": [dims.dp_rank(r) for r in range(rt.world)],
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

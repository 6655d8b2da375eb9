"""A stage's model laid out over its ranks: the DeviceMesh the ``parallel:`` block asks for,
then context parallelism, tensor parallelism, activation checkpointing and compile, expert
slices, pipeline stages and FSDP2, all on the meta device, before any rank gives its own
pieces storage (``fill``). The training loop and ``mindvl train plan`` both call it.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mindvl.trainer.device.activation_checkpoint import apply_activation_checkpointing
from mindvl.trainer.device.context_parallel import apply_context_parallel
from mindvl.trainer.device.mesh import ParallelDims, build_mesh, model_facts, resolve
from mindvl.trainer.device.parallel import parallelize
from mindvl.trainer.device.pipeline import reshards_after_forward, split_model, stages_of
from mindvl.trainer.runtime import Runtime
from mindvl.trainer.stage_config import StageConfig


def lay_out(
    cfg: StageConfig, core: nn.Module, rt: Runtime, fill: Callable[[nn.Module], None] | None
) -> tuple[ParallelDims, object, nn.Module]:
    """(dims, mesh, model): ``core`` (a MindVL on meta, its attention backend attached)
    parallelised for this rank; ``fill`` gives each rank's pieces storage and values once
    sharded (None: everything stays on meta). Impossible layouts fail in one line first."""

    def prepare(module) -> None:
        """Activation checkpointing, then compile: after TP, before FSDP2 (torchtitan's order)."""
        apply_activation_checkpointing(module, cfg.activation_checkpointing.model_dump())
        if cfg.compile:
            from mindvl.trainer.device.compile import compile_blocks

            compile_blocks(module, device=rt.device)

    dims = resolve(cfg.parallel, cfg.distributed, rt.world)
    dims.check(model_facts(core))
    dims.check_row(cfg.seq_len)
    mesh = build_mesh(rt.device.type, dims) if rt.distributed else None
    if dims.cp > 1:  # each cp rank runs its slice of every row (device/context_parallel.py)
        apply_context_parallel(core, mesh["cp"].get_group())
    # bf16: FSDP2 casts parameters itself (its compute dtype); otherwise autocast
    param_dtype = cfg.precision if dims.sharded else "fp32"
    if dims.pp > 1:  # this rank's pipeline stage(s) of the model, each FSDP2-sharded
        # blocks wrapped and compiled before the split (the stages keep them), but under TP
        # per stage after it: TP's plans name the plain modules
        per_stage = prepare if dims.tp > 1 else None
        if per_stage is None:
            prepare(core)
        model = split_model(core, dims, mesh, cfg.parallel)
        reshard = reshards_after_forward(cfg.parallel.pp_schedule)
        for stage in stages_of(model):
            parallelize(stage, dims, mesh, rt.device, param_dtype, reshard, per_stage, fill)
    elif mesh is not None:
        model = parallelize(core, dims, mesh, rt.device, param_dtype, prepare=prepare, fill=fill)
    else:
        prepare(core)
        if fill is not None:
            fill(core)
        model = core
    return dims, mesh, model

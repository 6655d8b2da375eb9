"""Parallelism applied to a MindVL from outside, over the training DeviceMesh
(:mod:`mindvl.trainer.device.mesh`): DDP, FSDP2/HSDP, and with FSDP2 tensor + sequence
parallelism (:mod:`mindvl.trainer.device.tensor_parallel`) and expert parallelism
(:mod:`mindvl.trainer.device.expert_parallel`).

FSDP2 (``torch.distributed.fsdp.fully_shard``) shards each vision block, each LLM decoder
layer and the projector as their own units, then the root (embeddings, LM head, norms),
torchtitan-style. Call :func:`~mindvl.trainer.model.freeze.set_trainable` before
parallelising. Every rank must run the same modules each step; MindVL makes sure of that
for text-only micro-batches (a zero-weighted dummy image), so DDP needs no
``find_unused_parameters``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

from mindvl.trainer.device.expert_parallel import (
    checkpoint_mesh,
    expert_parameter_names,
    shard_experts,
)
from mindvl.trainer.device.grad_norm import clip_grad_norm_by_mesh
from mindvl.trainer.device.mesh import EXPERT_REPLICAS, ParallelDims
from mindvl.trainer.device.tensor_parallel import apply_tensor_parallel
from mindvl.trainer.model.moe import routed_expert_modules

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def parallelize(
    model: nn.Module,
    dims: ParallelDims,
    mesh,
    device: torch.device,
    param_dtype: str = "fp32",
    reshard_after_forward: bool = True,
    prepare: Callable[[nn.Module], None] | None = None,
    fill: Callable[[nn.Module], None] | None = None,
) -> nn.Module:
    """Parallelise ``model`` (on ``device``, or on meta with ``fill``) over ``mesh``; returns what the loop calls.

    ``dims.ddp`` (the old ``distributed: ddp``): DDP over all ranks. Otherwise FSDP2 over
    ``dp_shard_cp`` (HSDP with ``dp_replicate``), after tensor parallelism over ``tp``
    (:mod:`mindvl.trainer.device.tensor_parallel`) or expert parallelism. ``prepare`` runs
    between the two (activation checkpointing and compile: torchtitan's order, so TP plans
    see the plain module names). ``param_dtype`` is FSDP2's compute dtype (gradients are
    reduced in fp32); DDP trains in the model's own dtype. ``fill`` gives a meta-device
    model its storage and values (:func:`~mindvl.trainer.device.materialize.materialise`)
    once it is sharded: after TP and FSDP2, each rank its own pieces, or before DDP's wrap
    (DDP copies rank 0's weights).
    """
    if dims.tp > 1:  # before FSDP2 (torchtitan's order): FSDP2 then shards the TP DTensors
        apply_tensor_parallel(model, mesh["tp"])
    if prepare is not None:
        prepare(model)
    if dims.ddp:
        from torch.nn.parallel import DistributedDataParallel

        if fill is not None:
            fill(model)
        ids = None if device.type == "cpu" else [device]
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
    model = _fully_shard(model, dims, mesh, DTYPES[param_dtype], reshard_after_forward)
    if fill is not None:
        fill(model)
    return model


def _fully_shard(
    model: nn.Module, dims: ParallelDims, mesh, param_dtype: torch.dtype, reshard: bool
) -> nn.Module:
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    dp_mesh = (
        mesh[("dp_replicate", "dp_shard_cp")] if dims.dp_replicate > 1 else mesh["dp_shard_cp"]
    )
    kw = {"mesh": dp_mesh, "mp_policy": policy, "reshard_after_forward": reshard}
    if dims.ep > 1:
        ckpt = checkpoint_mesh(mesh[("dp_replicate", "dp_shard_mod_ep", "ep", "cp")])
        shard_experts(model.llm, mesh["ep"], ckpt)
        for experts in routed_expert_modules(model.llm):
            fully_shard(experts, **{**kw, "mesh": _expert_mesh(dims, mesh)})
    if model.vision is not None:  # a pipeline stage past the first has no tower
        for block in model.vision.blocks:
            fully_shard(block, **kw)
    for layer in model.llm.get_decoder().layers:
        fully_shard(layer, **kw)
    if model.projector is not None:
        fully_shard(model.projector, **kw)
    fully_shard(model, **kw)
    return model


def _expert_mesh(dims: ParallelDims, mesh):
    """The ranks that hold one expert slice, as FSDP2 shards it: the ``dp_shard_mod_ep``
    ranks; with cp (whose ranks route other tokens of the rows) sharded over ``cp`` and
    replicated over ``dp_shard_mod_ep`` (and ``dp_replicate``, flattened with it), with
    dp_replicate alone replicated over it (HSDP; torch flattens only adjacent mesh dims,
    and ``ep`` sits between ``dp_shard_mod_ep`` and ``cp``)."""
    if dims.cp > 1:
        replicas = EXPERT_REPLICAS if dims.dp_replicate > 1 else "dp_shard_mod_ep"
        return mesh[(replicas, "cp")]
    if dims.dp_replicate > 1:
        return mesh[("dp_replicate", "dp_shard_mod_ep")]
    return mesh["dp_shard_mod_ep"]


def unwrap(model: nn.Module) -> nn.Module:
    """The MindVL inside a DDP wrapper (FSDP2 shards in place, so it is the model itself)."""
    return getattr(model, "module", model)


@contextlib.contextmanager
def no_grad_sync(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Skip gradient all-reduce/reduce-scatter for non-final micro-batches of a step."""
    if not enabled:
        yield
        return
    if hasattr(model, "no_sync"):  # DDP
        with model.no_sync():
            yield
    elif hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
    else:
        yield


def clip_gradients(
    model: nn.Module,
    max_norm: float | None,
    sharded_meshes: bool,
    uncounted: nn.Parameter | None = None,
) -> float:
    """Clip the gradients to ``max_norm`` (None: only measure); returns the global norm.

    ``sharded_meshes``: expert-parallel slices exist. Their DTensors only span the ranks
    holding one slice, so their squared norm is also summed over ``ep``; every other
    parameter's norm comes from its own mesh
    (:func:`~mindvl.trainer.device.grad_norm.clip_grad_norm_by_mesh`). ``uncounted``: a
    parameter left out (a pipeline's second copy of a tied embedding).
    """
    params = [p for p in model.parameters() if p.grad is not None and p is not uncounted]
    also_over = {}
    if sharded_meshes:
        experts = expert_parameter_names(model)
        for name, p in model.named_parameters():
            if name in experts:
                also_over[id(p)] = experts[name]._ep_group
    return clip_grad_norm_by_mesh(params, max_norm, also_over)

"""Data parallelism applied to a MindVL from outside: ``none``, ``ddp`` or ``fsdp`` (FSDP2),
and with FSDP2 expert parallelism (:mod:`mindvl.trainer.device.expert_parallel`).

FSDP2 (``torch.distributed.fsdp.fully_shard``) shards each vision block, each LLM decoder
layer and the projector as their own units, then the root (embeddings, LM head, norms),
torchtitan-style. Call :func:`~mindvl.trainer.model.freeze.set_trainable` before
parallelising. Every rank must run the same modules each step; MindVL makes sure of that
for text-only micro-batches (a zero-weighted dummy image), so DDP needs no
``find_unused_parameters``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from mindvl.trainer.device.expert_parallel import checkpoint_mesh, shard_experts
from mindvl.trainer.device.mesh import MeshLayout, build_mesh, world_mesh
from mindvl.trainer.model.moe import routed_expert_modules

STRATEGIES = ("none", "ddp", "fsdp")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def parallelize(
    model: nn.Module,
    strategy: str,
    device: torch.device,
    param_dtype: str = "fp32",
    reshard_after_forward: bool = True,
    layout: MeshLayout | None = None,
) -> nn.Module:
    """Wrap or shard ``model`` (already on ``device``); returns the module the loop calls.

    ``param_dtype`` is FSDP2's compute dtype (gradients are reduced in fp32); DDP and
    ``none`` train in the model's own dtype. ``layout.ep > 1`` (FSDP2 only, see
    :func:`~mindvl.trainer.device.mesh.check_layout`) adds expert parallelism.
    """
    if strategy not in STRATEGIES:
        raise ValueError(
            f"unknown parallel strategy {strategy!r} (choose from {', '.join(STRATEGIES)})"
        )
    if strategy == "none":
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = None if device.type == "cpu" else [device]
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
    return _fully_shard(model, device, DTYPES[param_dtype], reshard_after_forward, layout)


def _fully_shard(
    model: nn.Module,
    device: torch.device,
    param_dtype: torch.dtype,
    reshard: bool,
    layout: MeshLayout | None,
) -> nn.Module:
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    # an explicit mesh on ``device``: FSDP2's default mesh takes CUDA whenever one is
    # visible, which would move a CPU (gloo) run onto the GPU
    ep = layout.ep if layout is not None else 1
    mesh = build_mesh(device.type, layout) if ep > 1 else world_mesh(device.type)
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    kw = {"mesh": mesh["dp_shard"], "mp_policy": policy, "reshard_after_forward": reshard}
    if ep > 1:
        # experts: sliced over ep, each slice FSDP2-sharded over the ranks holding it
        shard_experts(model.llm, mesh["ep"], checkpoint_mesh(mesh))
        for experts in routed_expert_modules(model.llm):
            fully_shard(experts, **{**kw, "mesh": mesh["dp_shard_mod_ep"]})
    for block in model.vision.blocks:
        fully_shard(block, **kw)
    for layer in model.llm.get_decoder().layers:
        fully_shard(layer, **kw)
    fully_shard(model.projector, **kw)
    fully_shard(model, **kw)
    return model


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


def clip_gradients(model: nn.Module, max_norm: float | None, sharded_meshes: bool) -> float:
    """Clip the gradients to ``max_norm`` (None: only measure); returns the global norm."""
    if sharded_meshes:
        return clip_grad_norm_sharded(model, max_norm)
    params = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm else float("inf"))
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)


def clip_grad_norm_sharded(model: nn.Module, max_norm: float | None) -> float:
    """Global gradient norm (and clipping) over FSDP2 shards living on different meshes.

    Every rank holds disjoint pieces of the gradients (non-expert shards over all ranks,
    expert shards over the ranks of their ep slice), so the squared norm is the all-ranks
    sum of local squared norms. torch's ``clip_grad_norm_`` cannot mix meshes.
    """
    import torch.distributed as dist

    grads = [p.grad for p in model.parameters() if p.grad is not None]
    local = [g.to_local() if hasattr(g, "to_local") else g for g in grads]
    sq = torch.stack([g.detach().float().pow(2).sum() for g in local]).sum()
    dist.all_reduce(sq)
    norm = float(sq.sqrt())
    coef = min(max_norm / (norm + 1e-6), 1.0) if max_norm else 1.0
    if coef < 1.0:  # torch's rule
        for g in local:
            g.mul_(coef)
    return norm

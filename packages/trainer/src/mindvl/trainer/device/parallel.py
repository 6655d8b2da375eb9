"""Data parallelism applied to a MindVL from outside: ``none``, ``ddp`` or ``fsdp`` (FSDP2).

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

STRATEGIES = ("none", "ddp", "fsdp")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def parallelize(
    model: nn.Module,
    strategy: str,
    device: torch.device,
    param_dtype: str = "fp32",
    reshard_after_forward: bool = True,
) -> nn.Module:
    """Wrap or shard ``model`` (already on ``device``); returns the module the loop calls.

    ``param_dtype`` is FSDP2's compute dtype (gradients are reduced in fp32); DDP and
    ``none`` train in the model's own dtype.
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
    return _fully_shard(model, device, DTYPES[param_dtype], reshard_after_forward)


def _fully_shard(
    model: nn.Module, device: torch.device, param_dtype: torch.dtype, reshard: bool
) -> nn.Module:
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    # an explicit mesh on ``device``: FSDP2's default mesh takes CUDA whenever one is
    # visible, which would move a CPU (gloo) run onto the GPU
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)
    kw = {"mesh": mesh, "mp_policy": policy, "reshard_after_forward": reshard}
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

"""Activation checkpointing applied to a MindVL from outside, per part (torchtitan-style).

Each vision block and each LLM decoder layer is wrapped in torch's ``checkpoint_wrapper``
(non-reentrant) in its parent's module list, before FSDP2 sharding, so FSDP2 shards the
wrapped blocks. Modes, per part (``vision``, ``llm``; the projector is two linears and
never checkpointed):

- ``none``: keep every activation.
- ``full``: keep only each block's inputs; the whole block reruns in backward.
- ``selective``: op-level selective checkpointing
  (``torch.utils.checkpoint.create_selective_checkpoint_contexts``): inside each block the
  outputs of matmuls, convolutions and attention kernels are saved and everything else
  (norms, activations, rotary embeddings, casts, reshapes) is recomputed in backward. The
  expensive ops never run twice; the many cheap, memory-bound activations are not kept.

Parameter names gain a ``_checkpoint_wrapped_module.`` segment; ``state_dict()`` and
torch's distributed state-dict helpers strip it, so checkpoints keep their plain names.
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch import nn

MODES = ("none", "full", "selective")
CHECKPOINTED_PARTS = ("vision", "llm")


@functools.cache
def _saved_ops() -> frozenset:
    """The ATen ops whose outputs selective checkpointing keeps (the compute-heavy ones)."""
    aten = torch.ops.aten
    names = [
        "mm", "addmm", "bmm", "baddbmm", "convolution",
        "_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
        "_flash_attention_forward", "_efficient_attention_forward",
    ]  # fmt: skip
    ops = [getattr(aten, n).default for n in names if hasattr(aten, n)]
    with contextlib.suppress(AttributeError, RuntimeError):  # Ascend's kernel, with torch_npu
        ops.append(torch.ops.npu.npu_fusion_attention.default)
    return frozenset(ops)


def _save_compute_heavy(ctx, op, *args, **kwargs):
    from torch.utils.checkpoint import CheckpointPolicy

    if op in _saved_ops():
        return CheckpointPolicy.MUST_SAVE
    return CheckpointPolicy.PREFER_RECOMPUTE


def _selective_context():
    from torch.utils.checkpoint import create_selective_checkpoint_contexts

    return create_selective_checkpoint_contexts(_save_compute_heavy)


def checkpoint_block(block: nn.Module, mode: str) -> nn.Module:
    """``block`` wrapped for ``mode`` (``full`` or ``selective``)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        CheckpointImpl,
        checkpoint_wrapper,
    )

    kwargs = {"context_fn": _selective_context} if mode == "selective" else {}
    return checkpoint_wrapper(
        block, checkpoint_impl=CheckpointImpl.NO_REENTRANT, preserve_rng_state=True, **kwargs
    )


def part_blocks(model: nn.Module, part: str) -> nn.ModuleList:
    """The module list of a part's repeated blocks: vision blocks or LLM decoder layers."""
    if part == "vision":  # a pipeline stage past the first has no tower
        return model.vision.blocks if model.vision is not None else nn.ModuleList()
    if part == "llm":
        return model.llm.get_decoder().layers
    raise ValueError(
        f"activation checkpointing: unknown part {part!r} (choose from {', '.join(CHECKPOINTED_PARTS)})"
    )


def apply_activation_checkpointing(model: nn.Module, modes: dict[str, str]) -> None:
    """Wrap the blocks of each part in ``modes`` (``{part: none|full|selective}``) in place.

    Call after tensor parallelism and before ``torch.compile`` and FSDP2 (torchtitan's
    order). Applying it twice to a part is an error.
    """
    for part, mode in modes.items():
        if mode not in MODES:
            raise ValueError(
                f"activation checkpointing {part}: unknown mode {mode!r} (choose from {', '.join(MODES)})"
            )
        blocks = part_blocks(model, part)
        if mode == "none":
            continue
        # by key: a pipeline stage's layers keep their whole-model indices as names
        for key, block in list(blocks._modules.items()):
            if hasattr(block, "_checkpoint_wrapped_module"):
                raise RuntimeError(
                    f"activation checkpointing: {part} block {key} is already wrapped"
                )
            blocks._modules[key] = checkpoint_block(block, mode)


def live_bytes_after(fn) -> tuple[object, int]:
    """Run ``fn()`` (a forward pass) and return ``(its result, bytes it left alive)``.

    Every tensor storage an op creates during ``fn`` is tracked by a weak reference; what is
    still alive when ``fn`` returns is what autograd (or a checkpoint's recompute inputs and
    selective cache) keeps for backward, plus the result itself. Works on any device.
    """
    import gc

    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    created: list[tuple[int, StorageWeakRef, int]] = []

    class Track(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.device.type != "meta":
                    storage = t.untyped_storage()
                    created.append((storage._cdata, StorageWeakRef(storage), storage.nbytes()))
            return out

    with Track():
        result = fn()
    gc.collect()
    alive = {key: n for key, ref, n in created if not ref.expired()}  # one entry per storage
    return result, sum(alive.values())

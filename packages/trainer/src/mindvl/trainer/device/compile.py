"""``torch.compile`` per vision block and per LLM decoder layer (``compile: true``).

torchtitan's recipe: each repeated block is compiled on its own (one graph reused by every
layer of a part, short compile times), after activation checkpointing and before FSDP2
sharding, so FSDP2's communication stays outside the graphs.

The packed varlen attention call itself stays eager (``torch.compiler.disable``): its
segment lengths are host ints that change with every packed row (and flash-attn's and
Ascend's kernels take them as host lists), so traced, it would recompile per batch. Each
block therefore runs as compiled graphs for the projections, norms, rotary embeddings and
MLP around one eager attention call. Sequence lengths differ between micro-batches (the
vision tower's patch count always does), so the graphs are compiled with dynamic shapes.
Needs a working C++ compiler on CPU (inductor); the error says so when it is missing.
"""

from __future__ import annotations

import shutil

import torch
from torch import nn

from mindvl.trainer.device.activation_checkpoint import CHECKPOINTED_PARTS, part_blocks
from mindvl.trainer.device.attention import AttentionBackend

INPUTS_KEY = "mindvl_attention_inputs"
EAGER_FLAG = "_mindvl_eager_under_compile"
# what the towers consume themselves before their blocks run; everything else a backend
# returns only travels through the blocks to the attention function
TOWER_KEYS = {
    "vision": {
        "cu_seqlens",
        "window_index",
        "cu_window_seqlens",
        "max_seqlen",
        "max_window_seqlen",
    },
    "llm": {"attention_mask"},
}


class HiddenInputs:
    """A backend's per-batch attention inputs (segment lengths, id-keyed dicts, host
    lists) carried through a compiled block as one object: dynamo guards on the contents
    of a dict or list argument (recompiling for every new batch), not on an opaque object
    it only hands on."""

    __slots__ = ("kwargs",)

    def __init__(self, kwargs: dict) -> None:
        self.kwargs = kwargs


def eager_attention(fn):
    """``fn`` run eagerly under compile, with :class:`HiddenInputs` unpacked again."""
    if getattr(fn, EAGER_FLAG, False):
        return fn

    @torch.compiler.disable
    def attention(module, query, key, value, attention_mask, **kwargs):
        hidden = kwargs.pop(INPUTS_KEY, None)
        if hidden is not None:
            kwargs.update(hidden.kwargs)
        return fn(module, query, key, value, attention_mask, **kwargs)

    setattr(attention, EAGER_FLAG, True)
    return attention


def keep_attention_eager(implementation: str) -> None:
    """Re-register the attention function named ``implementation`` through
    :func:`eager_attention` (unchanged behaviour outside compile and without hidden inputs,
    so every other model in the process is unaffected)."""
    from transformers import AttentionInterface

    fn = AttentionInterface._global_mapping.get(implementation)
    if fn is None:
        raise ValueError(f"compile: attention implementation {implementation!r} is not registered")
    AttentionInterface.register(implementation, eager_attention(fn))


class HidingBackend(AttentionBackend):
    """Wraps a model's attention backend so its per-layer inputs travel hidden."""

    def __init__(self, inner: AttentionBackend) -> None:
        self.inner = inner
        self.name = inner.name
        self.llm_implementation = inner.llm_implementation
        self.vision_implementation = inner.vision_implementation

    @staticmethod
    def _hide(kwargs: dict, keep: set[str]) -> dict:
        shown = {k: v for k, v in kwargs.items() if k in keep}
        rest = {k: v for k, v in kwargs.items() if k not in keep}
        return {**shown, INPUTS_KEY: HiddenInputs(rest)} if rest else shown

    def vision_kwargs(self, grid_thw, vision_config) -> dict:
        return self._hide(self.inner.vision_kwargs(grid_thw, vision_config), TOWER_KEYS["vision"])

    def llm_kwargs(self, cu_seqlens, total, device) -> dict:
        return self._hide(self.inner.llm_kwargs(cu_seqlens, total, device), TOWER_KEYS["llm"])


def check_compiler(device: torch.device) -> None:
    """Inductor on CPU generates C++: fail early, in one line, without a compiler."""
    if device.type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        raise RuntimeError(
            "compile: true needs a C++ compiler for inductor on CPU (install g++), or set compile: false"
        )


def compile_blocks(
    model: nn.Module, backend: str = "inductor", device: torch.device | None = None
) -> None:
    """Compile every vision block and decoder layer of ``model`` (a MindVL or a pipeline
    stage of one) in place (call after
    :func:`~mindvl.trainer.device.attention.apply_attention_backend` and activation
    checkpointing, before FSDP2). ``backend``: torch.compile's (tests use ``aot_eager``);
    ``device``: where the model will run (its parameters may still be on meta)."""
    if backend == "inductor":
        check_compiler(device if device is not None else next(model.parameters()).device)
    core = getattr(model, "core", model)  # a stage attends through its core's backend
    attention = core.attention_backend
    keep_attention_eager(attention.vision_implementation)
    keep_attention_eager(attention.llm_implementation)
    if not isinstance(attention, HidingBackend):
        core.attention_backend = HidingBackend(attention)
    for part in CHECKPOINTED_PARTS:
        for block in part_blocks(model, part):
            block.compile(backend=backend, dynamic=True)  # in place: parameter names unchanged

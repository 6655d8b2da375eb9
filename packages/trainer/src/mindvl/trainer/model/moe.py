"""Mixture-of-experts LLMs inside MindVL: find the routed blocks and tap their routers.

transformers 5.x MoE decoders (``qwen3_moe``, ``qwen2_moe``, ``deepseek_v3``, ...) put a
block with ``gate`` (the router) and ``experts`` (the routed experts as 3-D
``gate_up_proj`` / ``down_proj`` tensors) in the ``mlp`` slot of their sparse layers. The
router returns ``(router_logits, top_k_weights, top_k_index)``. The LM's own
``...ForCausalLM.forward`` adds the balancing loss from those logits, but MindVL calls the
decoder and computes its loss itself, so it records the routers' outputs with forward
hooks (:class:`RouterTap`) and builds the router losses from them
(:mod:`mindvl.trainer.model.moe_loss`).

Scoring: a router with an ``e_score_correction_bias`` (DeepSeek-V3 and its relatives) scores
experts with a sigmoid and picks them with the bias added (aux-loss-free balancing);
the others use a softmax over the logits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

BIAS_NAME = "e_score_correction_bias"


@dataclass(frozen=True)
class MoELayout:
    """Where the routed experts are and how tokens pick them."""

    layers: tuple[int, ...]  # decoder layer indices holding routed experts
    num_experts: int
    top_k: int
    scoring: str  # "softmax" | "sigmoid"


def moe_blocks(llm: nn.Module) -> list[tuple[int, nn.Module]]:
    """``(decoder layer index, block)`` for every block with a router and routed experts."""
    decoder = llm.get_decoder() if hasattr(llm, "get_decoder") else llm
    layers = getattr(decoder, "layers", [])
    out = []
    for i, layer in enumerate(layers):
        block = getattr(layer, "mlp", None)
        if block is not None and hasattr(block, "gate") and hasattr(block, "experts"):
            out.append((i, block))
    return out


def moe_layout(llm: nn.Module) -> MoELayout | None:
    """The LLM's MoE layout, or ``None`` for a dense LLM."""
    blocks = moe_blocks(llm)
    if not blocks:
        return None
    gate = blocks[0][1].gate
    num_experts = int(getattr(gate, "num_experts", 0) or gate.weight.shape[0])
    top_k = int(getattr(gate, "top_k", 0) or llm.config.num_experts_per_tok)
    scoring = "sigmoid" if hasattr(gate, BIAS_NAME) else "softmax"
    return MoELayout(tuple(i for i, _ in blocks), num_experts, top_k, scoring)


def routed_expert_modules(llm: nn.Module) -> list[nn.Module]:
    return [block.experts for _, block in moe_blocks(llm)]


def correction_gates(llm: nn.Module) -> list[nn.Module]:
    """The routers with aux-loss-free balancing biases, one per MoE layer (empty if none)."""
    return [b.gate for _, b in moe_blocks(llm) if hasattr(b.gate, BIAS_NAME)]


class RouterTap:
    """Records ``(router_logits, top_k_index)`` of every MoE layer during :meth:`recording`.

    Outside ``recording`` the hooks do nothing: generation, and the routers' second run
    in backward under activation checkpointing (the forward's records are the ones used).
    """

    def __init__(self, llm: nn.Module) -> None:
        self.records: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.active = False
        self.handles = [b.gate.register_forward_hook(self._hook) for _, b in moe_blocks(llm)]

    def _hook(self, module, args, output) -> None:
        if not self.active:
            return
        if not (
            isinstance(output, tuple) and len(output) == 3 and not output[2].is_floating_point()
        ):
            raise TypeError(
                f"{type(module).__name__} does not return (router_logits, weights, indices);"
                " this transformers MoE router is not supported"
            )
        self.records.append((output[0], output[2]))

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
        self.records = []
        self.active = True
        try:
            yield self.records
        finally:
            self.active = False


def parameter_counts(model: nn.Module, llm: nn.Module) -> tuple[int, int]:
    """(total, active per token) parameters of ``model`` (tied weights once): a token runs
    ``top_k`` of the ``num_experts`` routed experts of each MoE layer, all else in full."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    layout = moe_layout(llm)
    if layout is None:
        return total, total
    routed = sum(p.numel() for e in routed_expert_modules(llm) for p in e.parameters())
    idle = routed * (layout.num_experts - layout.top_k) // layout.num_experts
    return total, total - idle

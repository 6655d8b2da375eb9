"""Training FLOPs of a packed micro-batch (vision + projector + LLM), for MFU.

Matmul work is counted from the model's own weights: every parameter with two or more
dimensions is a matmul weight applied once per token of its part (2 FLOPs per weight per
token forward), so the count follows any architecture without per-model formulas:

- vision: per 14px patch, the patch embedding and every block's projections and MLP;
- projector: per merged image token (2x2 patches);
- LLM: per real token, every decoder layer's weights, with each MoE layer's routed
  experts counted at ``top_k / num_experts`` of their size (a token runs top-k experts;
  routers and shared experts in full); the LM head per loss token (it only runs there);
  the input embedding is a lookup, not a matmul.

Attention scores and their weighted sums add ``2 * s^2 * (heads * head_dim)`` each per
layer and segment, over the real segments only: per sample of a packed row (sum of
``s_i^2``, not ``T^2``), per image frame in the tower's full-attention blocks and per
window in its window blocks. The full square is counted (what SDPA on CPU and
``torch.utils.flop_counter`` count; causal kernels may skip half of it). Padding is no
useful work and is not counted.

Backward: a part whose weights train costs weight gradients (1x forward) and input
gradients (1x) — input gradients also wherever a part before it trains; attention has no
weights, so its backward is 2x its forward wherever gradients flow. The patch embedding
never computes input gradients (its input is pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mindvl.trainer.model.moe import moe_layout, routed_expert_modules


def _matmul_weights(module: nn.Module, skip: set[int] = frozenset()) -> int:
    return sum(p.numel() for p in module.parameters() if p.ndim >= 2 and id(p) not in skip)


def _attention_width(config) -> tuple[int, int]:
    """(heads * query/key head dim, heads * value head dim) of an attention config
    (multi-head latent attention: nope + rope query/key dims, its own value dim)."""
    heads = getattr(config, "num_attention_heads", None) or config.num_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    if getattr(config, "qk_nope_head_dim", None) and getattr(config, "v_head_dim", None):
        qk = config.qk_nope_head_dim + config.qk_rope_head_dim
        return heads * qk, heads * config.v_head_dim
    return heads * head_dim, heads * head_dim


def llm_active_matmul_weights(llm: nn.Module) -> int:
    """Matmul weights a token runs through in the decoder layers (MoE: top-k experts)."""
    layers = llm.get_decoder().layers
    routed = routed_expert_modules(llm)
    routed_ids = {id(p) for e in routed for p in e.parameters()}
    total = sum(_matmul_weights(layer, routed_ids) for layer in layers)
    layout = moe_layout(llm)
    if layout is not None:
        experts = sum(_matmul_weights(e) for e in routed)
        total += experts * layout.top_k // layout.num_experts
    return total


@dataclass(frozen=True)
class FlopsModel:
    """Per-token matmul weights and attention widths of a MindVL, and which parts train."""

    patch_embed: int  # matmul weights per patch of the patch embedding
    vision_blocks: int  # all vision blocks' matmul weights, per patch
    vision_width: int  # heads * head_dim in the tower
    full_blocks: int  # tower blocks with full attention (per image frame)
    window_blocks: int  # tower blocks with window attention
    window: int  # window side in merged tokens
    merge: int  # spatial merge size (2: 2x2 patches per merged token)
    projector: int  # matmul weights per merged token
    llm_layers: int  # active matmul weights per token, all decoder layers
    llm_qk_width: int  # per layer: heads * query/key head dim
    llm_v_width: int  # per layer: heads * value head dim
    llm_depth: int
    lm_head: int  # matmul weights per loss token
    trains: tuple[bool, bool, bool]  # vision, projector, llm weights train

    @classmethod
    def from_model(cls, model: nn.Module) -> FlopsModel:
        """Count from an unwrapped MindVL after freezing (before sharding)."""
        vcfg, llm = model.vision.config, model.llm
        embed_w = model.vision.patch_embed.proj.weight
        full = set(getattr(vcfg, "fullatt_block_indexes", []) or [])
        depth = len(model.vision.blocks)
        head = llm.get_output_embeddings().weight
        qk, v = _attention_width(llm.config)
        trains = tuple(
            any(p.requires_grad for p in getattr(model, part).parameters())
            for part in ("vision", "projector", "llm")
        )
        return cls(
            patch_embed=embed_w.numel(),
            vision_blocks=sum(_matmul_weights(b) for b in model.vision.blocks),
            vision_width=vcfg.hidden_size,
            full_blocks=sum(1 for i in range(depth) if i in full),
            window_blocks=sum(1 for i in range(depth) if i not in full),
            window=vcfg.window_size // vcfg.spatial_merge_size // vcfg.patch_size,
            merge=vcfg.spatial_merge_size,
            projector=_matmul_weights(model.projector),
            llm_layers=llm_active_matmul_weights(llm),
            llm_qk_width=qk,
            llm_v_width=v,
            llm_depth=len(llm.get_decoder().layers),
            lm_head=head.numel(),
            trains=trains,
        )

    def vision_segments(self, grid_thw: list[tuple[int, int, int]]) -> tuple[list[int], list[int]]:
        """(full-attention lengths: one per image frame, window lengths) in patches."""
        full, windows = [], []
        for t, h, w in grid_thw:
            full += [h * w] * t
            mh, mw = h // self.merge, w // self.merge
            for r in range(0, mh, self.window):
                for c in range(0, mw, self.window):
                    n = min(self.window, mh - r) * min(self.window, mw - c) * self.merge**2
                    windows += [n] * t
        return full, windows

    def batch_flops(
        self,
        grid_thw: list[tuple[int, int, int]] | torch.Tensor | None,
        cu_seqlens: list[int],
        loss_tokens: int,
    ) -> float:
        """Forward + backward FLOPs of one packed row (real tokens and segments only)."""
        return sum(self.breakdown(grid_thw, cu_seqlens, loss_tokens).values())

    def breakdown(
        self,
        grid_thw: list[tuple[int, int, int]] | torch.Tensor | None,
        cu_seqlens: list[int],
        loss_tokens: int,
    ) -> dict[str, float]:
        """Forward + backward FLOPs of one packed row per term: matmuls of ``vision``,
        ``projector`` and ``llm`` (LM head included), and ``vision_attention``/``llm_attention``."""
        vision_w, proj_w, llm_w = self.trains
        # input gradients flow through a part when it or a part before it trains
        vision_g, proj_g, llm_g = vision_w, vision_w or proj_w, vision_w or proj_w or llm_w

        def matmul(weights: int, tokens: int, wgrad: bool, dgrad: bool) -> float:
            return 2.0 * weights * tokens * (1 + wgrad + dgrad)

        def attention(lengths: list[int], width_qk: int, width_v: int, grads: bool) -> float:
            return 2.0 * sum(s * s for s in lengths) * (width_qk + width_v) * (1 + 2 * grads)

        out = dict.fromkeys(
            ("vision", "vision_attention", "projector", "llm", "llm_attention"), 0.0
        )
        grids = [] if grid_thw is None else [tuple(int(x) for x in g) for g in list(grid_thw)]
        if grids:
            patches = sum(t * h * w for t, h, w in grids)
            full, windows = self.vision_segments(grids)
            width = self.vision_width
            out["vision"] = matmul(self.patch_embed, patches, vision_w, False) + matmul(
                self.vision_blocks, patches, vision_w, vision_g
            )
            out["vision_attention"] = self.full_blocks * attention(
                full, width, width, vision_g
            ) + self.window_blocks * attention(windows, width, width, vision_g)
            out["projector"] = matmul(self.projector, patches // self.merge**2, proj_w, proj_g)
        lengths = [b - a for a, b in zip(cu_seqlens, cu_seqlens[1:], strict=False)]
        out["llm"] = matmul(self.llm_layers, cu_seqlens[-1], llm_w, llm_g) + matmul(
            self.lm_head, loss_tokens, llm_w, llm_g
        )
        out["llm_attention"] = self.llm_depth * attention(
            lengths, self.llm_qk_width, self.llm_v_width, llm_g
        )
        return out


# Dense (no sparsity) peak TFLOP/s per device, by a substring of the device name; the first
# match wins, so specific names come before general ones.
PEAK_TFLOPS = {
    "bf16": [
        ("H100 PCIe", 756.0), ("H100", 989.4), ("H200", 989.4), ("H800", 989.4),
        ("GH200", 989.4), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0),
        ("B200", 2250.0), ("Ascend910B", 376.0),  # 910B2's published fp16/bf16 figure
    ],
    "fp32": [
        ("H100 PCIe", 51.2), ("H100", 66.9), ("H200", 66.9), ("A100", 19.5), ("A800", 19.5),
    ],
}  # fmt: skip


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "npu":
        return torch.npu.get_device_name(device)  # type: ignore[attr-defined]
    return device.type


def peak_tflops(configured: float | None, name: str, precision: str) -> float | None:
    """Peak TFLOP/s of one device: the stage's ``peak_tflops``, else ``$MINDVL_PEAK_TFLOPS``,
    else the table for ``precision`` by device name; None when unknown (no MFU then)."""
    import os

    if configured is not None:
        return configured
    env = os.environ.get("MINDVL_PEAK_TFLOPS")
    if env:
        try:
            value = float(env)
        except ValueError:
            raise ValueError(f"MINDVL_PEAK_TFLOPS={env!r} is not a number") from None
        if value <= 0:
            raise ValueError(f"MINDVL_PEAK_TFLOPS={env!r} must be positive")
        return value
    for key, value in PEAK_TFLOPS.get(precision, []):
        if key.lower() in name.lower():
            return value
    return None

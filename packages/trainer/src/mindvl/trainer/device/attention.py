"""Varlen attention backends: how packed samples are kept apart on each device.

The model code is single-device and backend-agnostic: once per micro-batch it asks its
backend for the extra keyword arguments of the vision tower and of the LLM
(:meth:`AttentionBackend.vision_kwargs`, :meth:`AttentionBackend.llm_kwargs`), and
transformers passes them down to every attention layer. Everything that depends on the
device (dense masks, flash-attn varlen, Ascend's fused kernel) lives here and is attached
to a model from outside with :func:`apply_attention_backend`.

- ``segments`` (the default on CPU, and on CUDA without flash-attn): one fused SDPA call
  per segment for the LLM, one per distinct window/image length for the tower; no T x T
  mask, see :mod:`mindvl.trainer.device.segment_attention`.
- ``dense`` (the reference, for comparison): one block-diagonal causal bool mask of shape
  (1, 1, T, T) built from ``cu_seqlens``; O(T²) memory and work. The vision tower keeps
  transformers' own per-window loop.
- ``flash`` (CUDA with flash-attn): transformers' ``flash_attention_2`` with
  ``cu_seq_lens_q/k`` so no mask is materialised.
- ``npu`` (Ascend): ``torch_npu.npu_fusion_attention`` in TND layout, see
  :mod:`mindvl.trainer.device.npu_attention`.

Padding after the last sample forms its own segment, so it only ever attends to itself
(its labels are -100, it never contributes loss).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import torch

BACKENDS = ("segments", "dense", "flash", "npu")


def segment_ends(cu_seqlens: list[int], total: int) -> list[int]:
    """Cumulative segment ends without the leading 0; trailing padding is one more segment."""
    ends = [int(x) for x in cu_seqlens[1:]]
    if not ends or ends[-1] < total:
        ends.append(total)
    return ends


def block_causal_mask(
    cu_seqlens: list[int], total: int, device: torch.device | str
) -> torch.Tensor:
    """(1, 1, T, T) bool mask, True where a query may attend: causal within each segment."""
    ends = segment_ends(cu_seqlens, total)
    lengths = torch.tensor(
        [e - s for s, e in zip([0, *ends[:-1]], ends, strict=True)], device=device
    )
    seg = torch.repeat_interleave(torch.arange(len(ends), device=device), lengths)
    same = seg[:, None] == seg[None, :]
    causal = torch.ones(total, total, dtype=torch.bool, device=device).tril()
    return (same & causal)[None, None]


def _cu_tensor(ends: list[int], device: torch.device | str) -> torch.Tensor:
    return torch.tensor([0, *ends], dtype=torch.int32, device=device)


class AttentionBackend:
    """Chooses attention implementations and builds per-micro-batch attention inputs."""

    name: str
    llm_implementation: str
    vision_implementation: str

    def vision_kwargs(self, grid_thw: torch.Tensor, vision_config) -> dict[str, Any]:
        return {}

    def llm_kwargs(self, cu_seqlens: list[int], total: int, device) -> dict[str, Any]:
        raise NotImplementedError


class DenseMaskBackend(AttentionBackend):
    """The reference: transformers' SDPA with one (1, 1, T, T) block-causal mask."""

    name = "dense"
    llm_implementation = "sdpa"
    vision_implementation = "sdpa"

    def llm_kwargs(self, cu_seqlens: list[int], total: int, device) -> dict[str, Any]:
        return {"attention_mask": block_causal_mask(cu_seqlens, total, device)}


class FlashVarlenBackend(AttentionBackend):
    """flash-attn varlen through transformers' ``flash_attention_2`` (CUDA only)."""

    name = "flash"
    llm_implementation = "flash_attention_2"
    vision_implementation = "flash_attention_2"

    def llm_kwargs(self, cu_seqlens: list[int], total: int, device) -> dict[str, Any]:
        ends = segment_ends(cu_seqlens, total)
        cu = _cu_tensor(ends, device)
        longest = max(e - s for s, e in zip([0, *ends[:-1]], ends, strict=True))
        return {
            "cu_seq_lens_q": cu,
            "cu_seq_lens_k": cu,
            "max_length_q": longest,
            "max_length_k": longest,
        }


@dataclass
class VisionSegments:
    """The vision tower's full-attention and window segmentations, computed once per batch."""

    cu_seqlens: torch.Tensor
    window_index: torch.Tensor
    cu_window_seqlens: torch.Tensor
    max_seqlen: int
    max_window_seqlen: int
    host: dict[int, list[int]]  # id(cu tensor) -> cumulative ends without the leading 0

    def as_kwargs(self) -> dict[str, Any]:
        """Precomputed values the Qwen2.5-VL tower pops instead of recomputing."""
        return {
            "cu_seqlens": self.cu_seqlens,
            "window_index": self.window_index,
            "cu_window_seqlens": self.cu_window_seqlens,
            "max_seqlen": self.max_seqlen,
            "max_window_seqlen": self.max_window_seqlen,
        }


def vision_segments(grid_thw: torch.Tensor, vision_config) -> VisionSegments:
    from transformers.vision_utils import get_vision_cu_seqlens, get_vision_window_index

    grid = grid_thw.cpu()
    cu = get_vision_cu_seqlens(grid)
    window_index, cu_window = get_vision_window_index(
        grid,
        spatial_merge_size=vision_config.spatial_merge_size,
        window_size=vision_config.window_size,
        patch_size=vision_config.patch_size,
    )
    cu_list, win_list = cu.tolist(), cu_window.tolist()
    device = grid_thw.device
    cu, cu_window = cu.to(device), cu_window.to(device)
    return VisionSegments(
        cu_seqlens=cu,
        window_index=window_index.to(device),
        cu_window_seqlens=cu_window,
        max_seqlen=max(b - a for a, b in zip(cu_list, cu_list[1:], strict=False)),
        max_window_seqlen=max(b - a for a, b in zip(win_list, win_list[1:], strict=False)),
        host={id(cu): cu_list[1:], id(cu_window): win_list[1:]},
    )


def make_backend(name: str, npu_fusion_attention=None) -> AttentionBackend:
    """One of :data:`BACKENDS`; ``npu_fusion_attention`` overrides torch_npu's kernel (tests)."""
    if name == "segments":
        from mindvl.trainer.device.segment_attention import SegmentSdpaBackend

        return SegmentSdpaBackend()
    if name == "dense":
        return DenseMaskBackend()
    if name == "flash":
        if importlib.util.find_spec("flash_attn") is None:
            raise RuntimeError("attention backend 'flash' needs flash-attn: pip install flash-attn")
        return FlashVarlenBackend()
    if name == "npu":
        from mindvl.trainer.device.npu_attention import NpuFusionBackend

        return NpuFusionBackend(npu_fusion_attention)
    raise ValueError(f"unknown attention backend {name!r} (choose from {', '.join(BACKENDS)})")


def default_backend_name(device: torch.device | str) -> str:
    kind = torch.device(device).type
    if kind == "npu":
        return "npu"
    if kind == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash"
    return "segments"


def apply_attention_backend(model, backend: AttentionBackend | str) -> AttentionBackend:
    """Attach ``backend`` to a MindVL model and switch its tower and LLM implementations."""
    if isinstance(backend, str):
        backend = make_backend(backend)
    model.attention_backend = backend
    model.vision.config._attn_implementation = backend.vision_implementation
    model.llm.config._attn_implementation = backend.llm_implementation
    return backend

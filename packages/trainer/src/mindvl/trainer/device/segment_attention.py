"""Packed attention without a T x T mask: one fused SDPA call per segment.

Where neither flash-attn nor Ascend's kernel is available (CPU, CUDA without flash-attn),
the dense reference builds one (1, 1, T, T) block-causal mask and computes every score of
the row only to mask most of them away: a 2048-token row of eight samples pays ~8x the
attention work it needs, in the mask-taking (unfused) SDPA path. Here every segment (a
sample, or the trailing padding) is a causal SDPA call on a slice of the row, so the work
is the sum of the squared segment lengths and PyTorch picks its fused kernels
(``is_causal=True``, no mask).

The vision tower's windows and images are handled the same way, bidirectionally, with
segments of equal length batched into one call: a tower sees many equal-sized windows, and
one call per length replaces transformers' one call per window.

Segment lengths are host ints computed once per micro-batch and handed to every layer
through transformers' attention kwargs, so no layer syncs the device for them.
FlexAttention document masks were measured as the alternative and lost on the CPU (see
docs/BENCHMARKS.md, "Packed attention backends").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from mindvl.trainer.device.attention import AttentionBackend, segment_ends, vision_segments

LLM_IMPLEMENTATION = "mindvl_segment_sdpa"
# The Qwen2.5-VL tower calls its attention once per layer with cu_seqlens only for names
# containing "flash"; other names get one call per window.
VISION_IMPLEMENTATION = "mindvl_flash_compatible_segment_sdpa"


def segment_lengths(ends: list[int], total: int) -> list[int]:
    """Lengths of the segments ending at ``ends``; a clear error unless they tile the row."""
    lengths = [b - a for a, b in zip([0, *ends[:-1]], ends, strict=True)]
    if not lengths or min(lengths) <= 0 or ends[-1] != total:
        raise ValueError(f"segment ends {ends[:8]} must rise from >0 to the row length {total}")
    return lengths


def _expand_kv(query: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Grouped-query attention: repeat each key/value head for its query heads."""
    rep = query.shape[1] // x.shape[1]
    return x if rep == 1 else x.repeat_interleave(rep, dim=1)


def causal_segments(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    lengths: list[int],
    scaling: float | None,
    dropout: float,
) -> torch.Tensor:
    """(1, N, T, D) inputs -> (1, T, N, D): causal attention inside each segment only."""
    key, value = _expand_kv(query, key), _expand_kv(query, value)
    parts = zip(*(x.split(lengths, dim=2) for x in (query, key, value)), strict=True)
    outs = [
        F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True, scale=scaling)
        for q, k, v in parts
    ]
    return torch.cat(outs, dim=2).transpose(1, 2).contiguous()


@dataclass
class LengthGroups:
    """Segments of a row grouped by length: ``order`` lists the row's positions group by
    group (segment by segment inside a group), ``inverse`` puts them back."""

    order: torch.Tensor
    inverse: torch.Tensor
    groups: list[tuple[int, int]]  # (segment length, number of segments), in ``order``

    @classmethod
    def build(cls, lengths: list[int], device) -> LengthGroups:
        starts = [0]
        for n in lengths[:-1]:
            starts.append(starts[-1] + n)
        by_length: dict[int, list[int]] = {}
        for start, n in zip(starts, lengths, strict=True):
            by_length.setdefault(n, []).append(start)
        order, groups = [], []
        for n in sorted(by_length):
            for start in by_length[n]:
                order.extend(range(start, start + n))
            groups.append((n, len(by_length[n])))
        order_t = torch.tensor(order, dtype=torch.long)
        inverse = torch.empty_like(order_t)
        inverse[order_t] = torch.arange(len(order))
        return cls(order_t.to(device), inverse.to(device), groups)


def bidirectional_groups(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    groups: LengthGroups,
    scaling: float | None,
    dropout: float,
) -> torch.Tensor:
    """(1, N, T, D) inputs -> (1, T, N, D): full attention inside each segment, one SDPA
    call per distinct segment length with the equal-length segments as its batch."""
    heads, dim = query.shape[1], query.shape[3]
    q, k, v = (x[0].index_select(1, groups.order) for x in (query, key, value))
    sizes = [n * count for n, count in groups.groups]
    outs = []
    for (n, count), qs, ks, vs in zip(
        groups.groups, q.split(sizes, 1), k.split(sizes, 1), v.split(sizes, 1), strict=True
    ):
        batched = (x.reshape(heads, count, n, dim).transpose(0, 1) for x in (qs, ks, vs))
        out = F.scaled_dot_product_attention(*batched, dropout_p=dropout, scale=scaling)
        outs.append(out.transpose(0, 1).reshape(heads, count * n, dim))
    out = torch.cat(outs, dim=1).index_select(1, groups.inverse)
    return out.transpose(0, 1).unsqueeze(0).contiguous()


def llm_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    out = causal_segments(query, key, value, kwargs["segment_lengths"], scaling, dropout)
    return out, None


def vision_attention(
    module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs
):
    groups = kwargs["segment_groups"].get(id(kwargs["cu_seq_lens_q"]))
    if groups is None:  # not precomputed (another caller): one host sync
        ends = kwargs["cu_seq_lens_q"].tolist()[1:]
        groups = LengthGroups.build(segment_lengths(ends, query.shape[2]), query.device)
    return bidirectional_groups(query, key, value, groups, scaling, dropout), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(LLM_IMPLEMENTATION, llm_attention)
    AttentionInterface.register(VISION_IMPLEMENTATION, vision_attention)


class SegmentSdpaBackend(AttentionBackend):
    """Per-segment SDPA for the LLM, length-grouped SDPA for the tower; no T x T mask."""

    name = "segments"
    llm_implementation = LLM_IMPLEMENTATION
    vision_implementation = VISION_IMPLEMENTATION

    def __init__(self) -> None:
        _register()

    def vision_kwargs(self, grid_thw: torch.Tensor, vision_config) -> dict[str, Any]:
        seg = vision_segments(grid_thw, vision_config)
        device = grid_thw.device
        groups = {
            key: LengthGroups.build(segment_lengths(ends, ends[-1]), device)
            for key, ends in seg.host.items()
        }
        return {**seg.as_kwargs(), "segment_groups": groups}

    def llm_kwargs(self, cu_seqlens: list[int], total: int, device) -> dict[str, Any]:
        return {"segment_lengths": segment_lengths(segment_ends(cu_seqlens, total), total)}

"""Ascend varlen attention through ``torch_npu.npu_fusion_attention`` (TND layout).

Written against torch_npu's documented API (no NPU in dev/CI): packed rows go in as
(T, N, D) tensors with ``actual_seq_qlen`` / ``actual_seq_kvlen`` = cumulative segment ends
as host-side int lists *without* the leading 0. The LLM runs causal with ``sparse_mode=3``
(right-down causal) and the 2048x2048 upper-triangular bool mask the kernel expects
(True = masked); the ViT runs bidirectional with ``sparse_mode=0`` and no mask. The lists
are built once per micro-batch (``llm_kwargs`` / ``vision_kwargs``) and handed to every
layer through transformers' attention kwargs, so no layer syncs the device for them.

Grouped-query attention is passed through unexpanded (the kernel accepts N_kv dividing N_q).
The kernel is injectable so the argument construction is unit-tested on CPU against a
reference implementation of the same contract.
"""

from __future__ import annotations

from typing import Any

import torch

from mindvl.trainer.device.attention import (
    AttentionBackend,
    segment_ends,
    vision_segments,
)

LLM_IMPLEMENTATION = "mindvl_npu_fusion"
# The Qwen2.5-VL tower calls its attention once with cu_seqlens only for names containing
# "flash"; other names get one call per window.
VISION_IMPLEMENTATION = "mindvl_npu_flash_fusion"
CAUSAL_MASK_SIZE = 2048

_masks: dict[tuple[str, int | None], torch.Tensor] = {}


def causal_compressed_mask(device: torch.device) -> torch.Tensor:
    """The kernel's 2048x2048 compressed causal mask (True above the diagonal), cached per device."""
    key = (device.type, device.index)
    if key not in _masks:
        _masks[key] = torch.triu(
            torch.ones(CAUSAL_MASK_SIZE, CAUSAL_MASK_SIZE, dtype=torch.bool, device=device), 1
        )
    return _masks[key]


def to_tnd(x: torch.Tensor) -> torch.Tensor:
    """(1, N, T, D) as transformers hands it over -> (T, N, D)."""
    if x.shape[0] != 1:
        raise ValueError(f"packed attention expects batch size 1, got {x.shape[0]}")
    return x[0].transpose(0, 1).contiguous()


def fusion_call(
    kernel,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    ends: list[int],
    scaling: float,
    causal: bool,
    dropout: float,
) -> torch.Tensor:
    """One TND kernel call; returns (1, T, N, D) as transformers' attention functions do."""
    q, k, v = to_tnd(query), to_tnd(key), to_tnd(value)
    if ends[-1] != q.shape[0]:
        raise ValueError(f"segment ends cover {ends[-1]} tokens, the row has {q.shape[0]}")
    extra: dict[str, Any] = {"sparse_mode": 0}
    if causal:
        extra = {"sparse_mode": 3, "atten_mask": causal_compressed_mask(q.device)}
    out = kernel(
        q,
        k,
        v,
        q.shape[1],
        "TND",
        scale=scaling,
        keep_prob=1.0 - dropout,
        actual_seq_qlen=ends,
        actual_seq_kvlen=ends,
        **extra,
    )[0]
    return out.unsqueeze(0)


def llm_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out = fusion_call(
        kwargs["npu_kernel"], query, key, value, kwargs["npu_seq_ends"], scale, True, dropout
    )
    return out, None


def vision_attention(
    module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs
):
    cu = kwargs["cu_seq_lens_q"]
    ends = kwargs["npu_vision_ends"].get(id(cu))
    if ends is None:  # not precomputed (another caller): one host sync
        ends = cu.tolist()[1:]
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out = fusion_call(kwargs["npu_kernel"], query, key, value, ends, scale, False, dropout)
    return out, None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(LLM_IMPLEMENTATION, llm_attention)
    AttentionInterface.register(VISION_IMPLEMENTATION, vision_attention)


def _torch_npu_kernel():
    try:
        import torch_npu  # noqa: F401  (registers the npu device)
    except ImportError as err:
        raise RuntimeError(
            "attention backend 'npu' needs torch_npu and Ascend CANN: install mindvl-trainer[npu]"
        ) from err
    return torch_npu.npu_fusion_attention


class NpuFusionBackend(AttentionBackend):
    """Ascend fused attention; ``kernel`` defaults to ``torch_npu.npu_fusion_attention``."""

    name = "npu"
    llm_implementation = LLM_IMPLEMENTATION
    vision_implementation = VISION_IMPLEMENTATION

    def __init__(self, kernel=None) -> None:
        self.kernel = kernel if kernel is not None else _torch_npu_kernel()
        _register()

    def vision_kwargs(self, grid_thw: torch.Tensor, vision_config) -> dict[str, Any]:
        seg = vision_segments(grid_thw, vision_config)
        return {**seg.as_kwargs(), "npu_vision_ends": seg.host, "npu_kernel": self.kernel}

    def llm_kwargs(self, cu_seqlens: list[int], total: int, device) -> dict[str, Any]:
        return {"npu_seq_ends": segment_ends(cu_seqlens, total), "npu_kernel": self.kernel}


def reference_fusion_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    head_num: int,
    input_layout: str,
    *,
    scale: float = 1.0,
    keep_prob: float = 1.0,
    atten_mask: torch.Tensor | None = None,
    actual_seq_qlen: list[int] | None = None,
    actual_seq_kvlen: list[int] | None = None,
    sparse_mode: int = 0,
    **unused,
) -> tuple[torch.Tensor, ...]:
    """What ``npu_fusion_attention`` computes for the arguments this module sends (TND only).

    Checks the contract strictly (host int lists without a leading 0 that end at T, the
    compressed causal mask for ``sparse_mode=3``, none for 0) and computes plain attention
    per segment, so tests and CPU dry runs can exercise the NPU path end to end.
    """
    if input_layout != "TND" or head_num != query.shape[1]:
        raise ValueError(
            f"expected TND with head_num={query.shape[1]}, got {input_layout}/{head_num}"
        )
    for name, ends in (
        ("actual_seq_qlen", actual_seq_qlen),
        ("actual_seq_kvlen", actual_seq_kvlen),
    ):
        if not isinstance(ends, list) or not all(type(e) is int for e in ends):
            raise TypeError(f"{name} must be a host list of ints, got {type(ends).__name__}")
        if (
            ends[0] <= 0
            or any(b <= a for a, b in zip(ends, ends[1:], strict=False))
            or ends[-1] != query.shape[0]
        ):
            raise ValueError(f"{name} must rise from >0 to T={query.shape[0]} without a leading 0")
    if sparse_mode == 3:
        expected = torch.triu(torch.ones(CAUSAL_MASK_SIZE, CAUSAL_MASK_SIZE, dtype=torch.bool), 1)
        if atten_mask is None or not torch.equal(atten_mask.cpu(), expected):
            raise ValueError("sparse_mode=3 needs the 2048x2048 upper-triangular bool mask")
    elif sparse_mode != 0 or atten_mask is not None:
        raise ValueError(f"unsupported sparse_mode={sparse_mode} / mask for this reference")
    if keep_prob != 1.0:
        raise ValueError("the reference has no dropout")
    rep = query.shape[1] // key.shape[1]
    k, v = key.repeat_interleave(rep, dim=1), value.repeat_interleave(rep, dim=1)
    outs, start = [], 0
    for end in actual_seq_qlen:
        q_s, k_s, v_s = (x[start:end].transpose(0, 1) for x in (query, k, v))
        scores = (q_s @ k_s.transpose(1, 2)) * scale
        if sparse_mode == 3:
            n = end - start
            scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        outs.append((scores.softmax(-1) @ v_s).transpose(0, 1))
        start = end
    return (torch.cat(outs),)

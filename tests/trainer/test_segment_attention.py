"""The per-segment SDPA backend equals the dense block-mask reference (fp32)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_model_packing import PAD_ID, VOCAB, loss_and_grads, make_sample, pack

from mindvl.trainer.device.attention import (
    apply_attention_backend,
    block_causal_mask,
    default_backend_name,
    segment_ends,
)
from mindvl.trainer.device.segment_attention import (
    LengthGroups,
    bidirectional_groups,
    causal_segments,
    segment_lengths,
)
from mindvl.trainer.model import MindVL
from mindvl.trainer.model.tiny import tiny_config

TOL = {"atol": 1e-5, "rtol": 1e-5}


def qkv(heads: int, kv_heads: int, total: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(1, heads, total, 8), (1, kv_heads, total, 8), (1, kv_heads, total, 8)]
    return [torch.randn(s, generator=gen, requires_grad=True) for s in shapes]


def outputs_and_grads(fn, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    out = fn(*leaves)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    return out.detach(), [t.grad for t in leaves]


def test_causal_segments_equal_the_dense_block_mask():
    cu, total = [0, 5, 6, 19, 30], 37  # four samples (one of a single token) + 7 of padding
    tensors = qkv(heads=4, kv_heads=2, total=total, seed=0)  # grouped-query attention
    lengths = segment_lengths(segment_ends(cu, total), total)
    assert lengths == [5, 1, 13, 11, 7]
    mask = block_causal_mask(cu, total, "cpu")

    def dense(q, k, v):
        k, v = (x.repeat_interleave(2, dim=1) for x in (k, v))
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3).transpose(1, 2)

    out, grads = outputs_and_grads(
        lambda q, k, v: causal_segments(q, k, v, lengths, 0.3, 0.0), tensors
    )
    ref, ref_grads = outputs_and_grads(dense, tensors)
    assert out.shape == (1, total, 4, 8)
    torch.testing.assert_close(out, ref, **TOL)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, **TOL)


def test_length_grouped_segments_equal_a_block_diagonal_mask():
    lengths = [16, 4, 16, 9, 4, 16]  # equal lengths apart from each other, as windows are
    total = sum(lengths)
    groups = LengthGroups.build(lengths, "cpu")
    assert groups.groups == [(4, 2), (9, 1), (16, 3)]
    seg = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    mask = (seg[:, None] == seg[None, :])[None, None]
    tensors = qkv(heads=2, kv_heads=2, total=total, seed=1)

    def dense(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)

    out, grads = outputs_and_grads(
        lambda q, k, v: bidirectional_groups(q, k, v, groups, None, 0.0), tensors
    )
    ref, ref_grads = outputs_and_grads(dense, tensors)
    torch.testing.assert_close(out, ref, **TOL)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, **TOL)


def test_segments_must_tile_the_row():
    with pytest.raises(ValueError, match="must rise from >0 to the row length 10"):
        segment_lengths([4, 4, 10], 10)
    with pytest.raises(ValueError, match="row length 12"):
        segment_lengths([4, 10], 12)


@pytest.mark.parametrize("llm_type", ["qwen3", "llama"])
def test_model_with_segments_equals_dense_mask(llm_type):
    gen = torch.Generator().manual_seed(3)
    samples = [
        make_sample(gen, [(1, 8, 8), (1, 4, 4)], text=7),  # windows of two sizes
        make_sample(gen, [], text=10),
        make_sample(gen, [(1, 4, 8)], text=5),
        make_sample(gen, [], text=1),
    ]
    batch = pack(samples, pad_to=sum(len(s["ids"]) for s in samples) + 6)
    torch.manual_seed(0)
    model = MindVL(tiny_config(VOCAB, PAD_ID, llm_type=llm_type)).train()
    assert model.attention_backend.name == default_backend_name("cpu") == "segments"
    loss, tokens, grads = loss_and_grads(model, batch)
    apply_attention_backend(model, "dense")
    loss_ref, tokens_ref, grads_ref = loss_and_grads(model, batch)
    assert tokens == tokens_ref
    assert loss == pytest.approx(loss_ref, rel=1e-6)
    assert grads.keys() == grads_ref.keys()
    assert any(n.startswith("vision.") for n in grads)
    for n, g in grads.items():
        torch.testing.assert_close(g, grads_ref[n], atol=1e-6, rtol=1e-5, msg=n)

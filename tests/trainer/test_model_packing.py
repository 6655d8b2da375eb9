"""Packing equivalence: a packed row gives the same loss and gradients as its samples alone."""

from __future__ import annotations

import pytest
import torch

from mindvl.trainer.batch import PackedBatch
from mindvl.trainer.device.attention import apply_attention_backend, block_causal_mask, make_backend
from mindvl.trainer.device.npu_attention import reference_fusion_attention
from mindvl.trainer.model import ImageTokenMismatch, MindVL, count_loss_tokens
from mindvl.trainer.model.tiny import tiny_config

VOCAB = 64
PAD_ID = 5
PATCH_DIM = 3 * 2 * 14 * 14


def make_sample(gen: torch.Generator, grids: list[tuple[int, int, int]], text: int) -> dict:
    """Random ids with one run of image pads per image, loss on the text after them."""
    ids, labels = [], []
    for t, h, w in grids:
        ids += [7] + [PAD_ID] * (t * h * w // 4) + [8]
        labels += [-100] * (t * h * w // 4 + 2)
    words = torch.randint(10, VOCAB, (text,), generator=gen).tolist()
    ids += words
    labels += words
    n = sum(t * h * w for t, h, w in grids)
    pixels = torch.randn(n, PATCH_DIM, generator=gen)
    return {"ids": ids, "labels": labels, "pixels": pixels, "grids": grids, "key": f"s{len(ids)}"}


def pack(samples: list[dict], pad_to: int | None = None) -> PackedBatch:
    ids, labels, pos, cu = [], [], [], [0]
    for s in samples:
        ids += s["ids"]
        labels += s["labels"]
        pos += list(range(len(s["ids"])))
        cu.append(len(ids))
    extra = (pad_to or len(ids)) - len(ids)
    ids += [0] * extra
    labels += [-100] * extra
    pos += list(range(extra))
    grids = [g for s in samples for g in s["grids"]]
    pixels = [s["pixels"] for s in samples if s["grids"]]
    return PackedBatch(
        input_ids=torch.tensor([ids]),
        labels=torch.tensor([labels]),
        position_ids=torch.tensor([pos]),
        cu_seqlens=cu,
        pixel_values=torch.cat(pixels) if pixels else None,
        image_grid_thw=torch.tensor(grids) if grids else None,
        sample_keys=[s["key"] for s in samples],
    )


def loss_and_grads(model: MindVL, batch: PackedBatch) -> tuple[float, int, dict]:
    model.zero_grad(set_to_none=True)
    out = model(batch)
    out.loss_sum.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return out.loss_sum.item(), out.loss_tokens, grads


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    return [
        make_sample(gen, [(1, 4, 8)], text=9),
        make_sample(gen, [], text=12),  # text only
        make_sample(gen, [(1, 6, 4), (1, 2, 2)], text=6),
    ]


@pytest.mark.parametrize(
    ("llm_type", "attention"), [("qwen3", "segments"), ("llama", "segments"), ("qwen3", "dense")]
)
def test_packed_equals_one_by_one(samples, llm_type, attention):
    torch.manual_seed(0)
    model = MindVL(tiny_config(VOCAB, PAD_ID, llm_type=llm_type)).train()
    assert model.attention_backend.name == "segments"  # the default without flash/npu
    apply_attention_backend(model, attention)
    packed = pack(samples, pad_to=sum(len(s["ids"]) for s in samples) + 5)
    loss, tokens, grads = loss_and_grads(model, packed)

    loss_one, tokens_one, grads_one = 0.0, 0, {}
    for s in samples:
        l1, t1, g1 = loss_and_grads(model, pack([s]))
        loss_one += l1
        tokens_one += t1
        for n, g in g1.items():
            grads_one[n] = grads_one.get(n, 0) + g

    assert tokens == tokens_one == count_loss_tokens(packed.labels, packed.cu_seqlens)
    assert tokens == 9 + 11 + 6  # all text labels except a sample's own first token
    assert loss == pytest.approx(loss_one, rel=1e-5)
    assert grads.keys() == grads_one.keys()
    assert any(n.startswith("vision.") for n in grads)
    for n, g in grads.items():
        torch.testing.assert_close(g, grads_one[n], atol=1e-5, rtol=1e-4, msg=n)


def test_sample_never_sees_its_neighbours(samples):
    torch.manual_seed(1)
    model = MindVL(tiny_config(VOCAB, PAD_ID)).eval()
    a, b = samples[0], samples[1]
    changed = dict(b, ids=[(i + 3) % VOCAB if i != PAD_ID else i for i in b["ids"]])
    with torch.no_grad():
        first = model(pack([b, a]), return_logits=True).logits
        second = model(pack([changed, a]), return_logits=True).logits
    n = len(b["ids"])
    torch.testing.assert_close(first[:, n:], second[:, n:], atol=1e-6, rtol=0)
    assert not torch.allclose(first[:, :n], second[:, :n])


def test_block_causal_mask_layout():
    mask = block_causal_mask([0, 2, 5], total=6, device="cpu")[0, 0]
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 1],  # padding: its own segment
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)


def test_image_pad_count_mismatch_is_a_clear_error(samples):
    model = MindVL(tiny_config(VOCAB, PAD_ID))
    s = dict(samples[0], ids=samples[0]["ids"][:-1] + [PAD_ID])
    with pytest.raises(ImageTokenMismatch, match=r"9 <\|image_pad\|> tokens .* give 8 merged"):
        model(pack([s]))


def test_fake_npu_backend_matches_the_default(samples):
    torch.manual_seed(2)
    model = MindVL(tiny_config(VOCAB, PAD_ID)).eval()
    batch = pack(samples, pad_to=60)
    with torch.no_grad():
        sdpa = model(batch, return_logits=True)
        calls = []
        apply_attention_backend(model, make_npu(reference_fusion_attention, calls))
        npu = model(batch, return_logits=True)
    torch.testing.assert_close(npu.logits, sdpa.logits, atol=1e-5, rtol=1e-5)
    assert npu.loss_sum.item() == pytest.approx(sdpa.loss_sum.item(), rel=1e-6)
    # one kernel call per layer (2 ViT blocks bidirectional, 2 LLM layers causal), not per window
    assert sorted(calls) == [0, 0, 3, 3]


def make_npu(kernel, calls):
    def recording(*args, **kwargs):
        calls.append(kwargs["sparse_mode"])
        return kernel(*args, **kwargs)

    return make_backend("npu", npu_fusion_attention=recording)

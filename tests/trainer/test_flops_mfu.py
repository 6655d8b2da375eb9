"""The FLOPs model behind MFU: hand counts, torch's FLOP counter, peak table and overrides."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mindvl.trainer.device.attention import vision_segments
from mindvl.trainer.flops import FlopsModel, peak_tflops
from mindvl.trainer.model import MindVL
from mindvl.trainer.model.freeze import set_trainable
from mindvl.trainer.model.loss import count_loss_tokens
from mindvl.trainer.model.tiny import pack_samples, random_image_sample, tiny_config

MATMUL_TERMS = ("vision", "projector", "llm")


def _model_and_batch(llm_type: str = "qwen3", trainable=None):
    torch.manual_seed(0)
    model = MindVL(tiny_config(64, 5, llm_type)).train()
    if trainable is not None:
        set_trainable(model, trainable)
    gen = torch.Generator().manual_seed(0)
    # two samples of 1 + 16 image pads + 1 + text tokens: 38 and 25 tokens, 2 images 8x8
    batch = pack_samples([random_image_sample(gen, 64, 5, n) for n in (20, 7)], 5)
    return model, batch


def _terms(model, batch) -> dict[str, float]:
    loss_tokens = count_loss_tokens(batch.labels, batch.cu_seqlens)
    return FlopsModel.from_model(model).breakdown(
        batch.image_grid_thw, batch.cu_seqlens, loss_tokens
    )


def test_hand_count_of_the_tiny_model():
    """Every term of the tiny config counted by hand (all parts train: matmuls 3x forward,
    the patch embedding 2x, attention 3x)."""
    model, batch = _model_and_batch()
    assert batch.cu_seqlens == [0, 38, 63]
    assert count_loss_tokens(batch.labels, batch.cu_seqlens) == 29  # 22 + 9 text labels - 2
    patches, merged = 2 * 64, 2 * 16
    patch_embed = 32 * 1176  # conv 3x2x14x14 -> 32
    block = 32 * 96 + 32 * 32 + 3 * 32 * 64  # qkv, proj, gate/up/down MLP
    projector = 128 * 48 + 48 * 32
    layer = 32 * 32 + 2 * 32 * 16 + 32 * 32 + 3 * 32 * 64  # q, k and v (2 kv heads), o, MLP
    head = 64 * 32  # tied LM head, on the 29 loss tokens only
    got = _terms(model, batch)
    assert got["vision"] == 2 * patch_embed * patches * 2 + 2 * 2 * block * patches * 3
    assert got["projector"] == 2 * projector * merged * 3
    assert got["llm"] == 2 * 2 * layer * 63 * 3 + 2 * head * 29 * 3
    # attention: 2 * s^2 * (q.k width + p.v width) per layer and segment, x3 with backward
    full = 2 * (64**2 + 64**2) * (32 + 32) * 3  # block 1: per image
    window = 2 * 8 * 16**2 * (32 + 32) * 3  # block 0: 4 windows of 2x2 merged tokens each
    assert got["vision_attention"] == full + window
    assert got["llm_attention"] == 2 * 2 * (38**2 + 25**2) * (4 * 8 + 4 * 8) * 3  # not 63^2


@pytest.mark.parametrize(
    "llm_type,trainable",
    [("qwen3", None), ("qwen3", ["llm"]), ("qwen3", ["projector"]), ("qwen3_moe", None)],
)
def test_matmul_terms_agree_with_torch_flop_counter(llm_type, trainable):
    """torch.utils.flop_counter on a real forward+backward counts the matmuls (mm, addmm,
    convolutions; its CPU SDPA kernels are not counted, hence matmul terms only)."""
    model, batch = _model_and_batch(llm_type, trainable)
    if llm_type == "qwen3_moe":  # per-expert F.linear, which the counter sees
        model.llm.config._experts_implementation = "eager"
    with FlopCounterMode(display=False) as counter:
        model(batch).loss_sum.backward()
    counted = counter.get_total_flops()
    ours = sum(_terms(model, batch)[k] for k in MATMUL_TERMS)
    assert ours == pytest.approx(counted, rel=0.03)


def test_attention_term_agrees_with_torch_flop_counter():
    """deepseek_v3's attention (MLA: query/key head dim 16, value head dim 8) makes CPU SDPA
    take its math path, batched matmuls the counter sees: per packed sample, s_i^2 each."""
    model, batch = _model_and_batch("deepseek_v3")
    model.llm.config._experts_implementation = "eager"
    with FlopCounterMode(display=False) as counter:
        model(batch).loss_sum.backward()
    counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    terms = _terms(model, batch)
    assert terms["llm_attention"] == counts["aten.bmm"]
    assert sum(terms[k] for k in MATMUL_TERMS) == counter.get_total_flops() - counts["aten.bmm"]


def test_moe_counts_active_experts_only():
    dense, batch = _model_and_batch("qwen3_moe")
    fm = FlopsModel.from_model(dense)
    # per layer: attention as in qwen3 (head_dim 8), router 4x32, 2 of 4 experts of 3x32x16
    layer = 32 * 32 + 2 * 32 * 16 + 32 * 32 + 4 * 32 + 2 * 3 * 32 * 16
    assert fm.llm_layers == 2 * layer


def test_vision_segments_match_the_towers_own():
    """Window and full-attention lengths, analytic, against transformers' window index."""
    model, _ = _model_and_batch()
    fm = FlopsModel.from_model(model)
    grids = [(1, 6, 10), (2, 4, 4), (1, 14, 8)]
    seg = vision_segments(torch.tensor(grids), model.vision.config)
    full, windows = fm.vision_segments(grids)

    def lengths(cu):
        cu = cu.tolist()
        return [b - a for a, b in zip(cu, cu[1:], strict=False) if b > a]

    assert full == lengths(seg.cu_seqlens)
    assert sorted(windows) == sorted(lengths(seg.cu_window_seqlens))


def test_peak_table_and_overrides(monkeypatch):
    monkeypatch.delenv("MINDVL_PEAK_TFLOPS", raising=False)
    assert peak_tflops(None, "NVIDIA H100 80GB HBM3", "bf16") == 989.4
    assert peak_tflops(None, "NVIDIA H100 PCIe", "bf16") == 756.0
    assert peak_tflops(None, "NVIDIA A100-SXM4-80GB", "bf16") == 312.0
    assert peak_tflops(None, "Ascend910B2", "bf16") == 376.0
    assert peak_tflops(None, "NVIDIA A100-SXM4-80GB", "fp32") == 19.5
    assert peak_tflops(None, "cpu", "fp32") is None  # no MFU without a known peak
    monkeypatch.setenv("MINDVL_PEAK_TFLOPS", "2.5")
    assert peak_tflops(None, "cpu", "fp32") == 2.5
    assert peak_tflops(7.0, "cpu", "fp32") == 7.0  # the stage config wins
    monkeypatch.setenv("MINDVL_PEAK_TFLOPS", "fast")
    with pytest.raises(ValueError, match="MINDVL_PEAK_TFLOPS='fast' is not a number"):
        peak_tflops(None, "cpu", "fp32")

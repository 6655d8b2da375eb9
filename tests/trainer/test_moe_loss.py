"""MoE router losses: transformers' balancing loss per sample, real tokens only, packing-proof."""

from __future__ import annotations

import pytest
import torch
from test_model_packing import PAD_ID, VOCAB, make_sample, pack
from transformers.models.qwen3_moe.modeling_qwen3_moe import load_balancing_loss_func

from mindvl.trainer.model import MindVL
from mindvl.trainer.model.moe import RouterTap
from mindvl.trainer.model.tiny import tiny_config


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    gen = torch.Generator().manual_seed(3)
    return [
        make_sample(gen, [(1, 4, 8)], text=9),
        make_sample(gen, [], text=12),
        make_sample(gen, [(1, 6, 4), (1, 2, 2)], text=6),
    ]


def moe_model(llm_type: str, seed: int = 0) -> MindVL:
    torch.manual_seed(seed)
    return MindVL(tiny_config(VOCAB, PAD_ID, llm_type=llm_type)).train()


def test_balancing_loss_is_transformers_per_sample_without_padding(samples):
    model = moe_model("qwen3_moe")
    layout = model.moe
    assert (layout.layers, layout.num_experts, layout.top_k, layout.scoring) == (
        (0, 1),
        4,
        2,
        "softmax",
    )
    real = sum(len(s["ids"]) for s in samples)
    out = model(pack(samples, pad_to=real + 7))
    assert out.router.tokens == real
    tap = RouterTap(model.llm)
    expected, z_expected = 0.0, 0.0
    for s in samples:
        with tap.recording() as records:
            model(pack([s]))
        logits = tuple(r[0] for r in records)
        hf = load_balancing_loss_func(logits, layout.num_experts, layout.top_k)
        expected += len(s["ids"]) * float(hf.detach())
        lse2 = torch.stack([torch.logsumexp(x, -1).square() for x in logits])
        z_expected += float(lse2.mean(0).sum())
    assert float(out.router.aux_sum) == pytest.approx(expected, rel=1e-5)
    assert float(out.router.z_sum) == pytest.approx(z_expected, rel=1e-5)
    # the 7 padding tokens change transformers' value over the whole row, not ours
    with tap.recording() as records:
        model(pack(samples, pad_to=real + 7))
    whole = load_balancing_loss_func(tuple(r[0] for r in records), 4, 2)
    assert float(whole) * real != pytest.approx(float(out.router.aux_sum), rel=1e-3)
    counts = out.router.expert_counts
    assert counts.shape == (2, 4) and counts.sum().item() == 2 * real * 2  # layers*tokens*k


def objective_and_grads(model: MindVL, batch) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    out = model(batch)
    total = out.loss_sum + 0.1 * out.router.aux_sum + 0.01 * out.router.z_sum
    total.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return float(total), grads


@pytest.mark.parametrize("llm_type", ["qwen3_moe", "deepseek_v3"])
def test_packed_equals_one_by_one_with_router_losses(samples, llm_type):
    model = moe_model(llm_type, seed=1)
    real = sum(len(s["ids"]) for s in samples)
    total, grads = objective_and_grads(model, pack(samples, pad_to=real + 5))
    total_one, grads_one = 0.0, {}
    for s in samples:
        t1, g1 = objective_and_grads(model, pack([s]))
        total_one += t1
        for n, g in g1.items():
            grads_one[n] = grads_one.get(n, 0) + g
    assert total == pytest.approx(total_one, rel=1e-5)
    assert grads.keys() == grads_one.keys()
    assert any(".gate.weight" in n for n in grads)  # the router learns from the aux loss
    for n, g in grads.items():
        torch.testing.assert_close(g, grads_one[n], atol=1e-5, rtol=1e-4, msg=n)


def test_dense_llm_has_no_router_stats(samples):
    model = MindVL(tiny_config(VOCAB, PAD_ID))
    assert model.moe is None and model(pack(samples[:1])).router is None

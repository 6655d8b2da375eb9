"""Ulysses context parallelism on 2 gloo ranks: attention over a split row equals the
unsplit row's (a segment straddling the split included, no attention across segments) for
each varlen backend, also with one key/value head for the 2 ranks (repeated), and a tiny MoE MindVL's split forward gives the unsplit row's loss,
router statistics and gradients (its odd-length row padded for the split; its images run
through the tower on the rank whose share holds them)."""

from __future__ import annotations

import gc
import os
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from dist_helpers import assert_fork_safe, free_port
from test_model_packing import PAD_ID, VOCAB, make_sample, pack

from mindvl.common.errors import UserError
from mindvl.trainer.device.attention import block_causal_mask, make_backend
from mindvl.trainer.device.context_parallel import (
    UlyssesBackend,
    apply_context_parallel,
    image_shares,
)
from mindvl.trainer.device.mesh import ModelFacts, resolve
from mindvl.trainer.device.npu_attention import reference_fusion_attention
from mindvl.trainer.model import MindVL
from mindvl.trainer.model.tiny import tiny_config
from mindvl.trainer.stage_config import ParallelSpec

CP = 2
T, HEADS, DIM = 16, 4, 8
CU = [0, 5, 13, 14]  # segment [5, 13) straddles the split at 8; [14, 16) is padding


def run_ranks(fn, *args) -> None:
    """``fn(rank, *args)`` on CP gloo ranks; an assertion in a rank fails the test."""
    gc.collect()  # see dist_helpers.spawn
    assert_fork_safe()
    mp.start_processes(
        _rank, args=(fn, free_port(), *args), nprocs=CP, start_method="fork", join=True
    )


def _rank(rank: int, fn, port: int, *args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=CP)
    try:
        fn(rank, *args)
    finally:
        dist.destroy_process_group()


def eager_block_causal(q, k, v) -> torch.Tensor:
    """Reference: softmax attention under the explicit block-causal mask, (1, T, H, D)."""
    k, v = (x.repeat_interleave(HEADS // k.shape[1], dim=1) for x in (k, v))
    scores = (q @ k.transpose(-1, -2)) * DIM**-0.5
    scores = scores.masked_fill(~block_causal_mask(CU, T, "cpu"), float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2)


def _attention_rank(rank: int, backend_name: str, kv_heads: int) -> None:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, HEADS, T, DIM, generator=gen)
    k, v = (torch.randn(1, kv_heads, T, DIM, generator=gen) for _ in range(2))
    layer = SimpleNamespace(
        is_causal=True, num_key_value_groups=HEADS // kv_heads, config=SimpleNamespace()
    )
    inner = make_backend(backend_name, reference_fusion_attention)
    backend = UlyssesBackend(inner, dist.group.WORLD, CP)
    attend = ALL_ATTENTION_FUNCTIONS[backend.llm_implementation]
    mine = slice(rank * T // CP, (rank + 1) * T // CP)

    def split_attention(q, k, v):
        kwargs = backend.llm_kwargs(CU, T, "cpu")  # the whole row's segments
        mask = kwargs.pop("attention_mask", None)
        local = (x[:, :, mine].detach().requires_grad_() for x in (q, k, v))
        lq, lk, lv = local
        out, _ = attend(layer, lq, lk, lv, mask, scaling=DIM**-0.5, dropout=0.0, **kwargs)
        return out, (lq, lk, lv)

    out, local = split_attention(q, k, v)
    assert out.shape == (1, T // CP, HEADS, DIM)
    full = [x.clone().requires_grad_() for x in (q, k, v)]
    ref = eager_block_causal(*full)
    torch.testing.assert_close(out, ref[:, mine], atol=1e-5, rtol=1e-5)
    # gradients through both all-to-alls: each rank's slice gets the unsplit gradient
    weight = torch.randn(ref.shape, generator=gen)
    (ref * weight).sum().backward()
    (out * weight[:, mine]).sum().backward()
    for got, want in zip(local, full, strict=True):
        torch.testing.assert_close(got.grad, want.grad[:, :, mine], atol=1e-5, rtol=1e-5)
    # no token sees another segment: new keys/values outside [5, 13) leave it unchanged
    k2, v2 = k.clone(), v.clone()
    outside = torch.ones(T, dtype=torch.bool)
    outside[5:13] = False
    k2[:, :, outside], v2[:, :, outside] = 9.0, -9.0
    out2, _ = split_attention(q, k2, v2)
    seg = torch.zeros(T, dtype=torch.bool)
    seg[5:13] = True
    keep = seg[mine]
    torch.testing.assert_close(out2[:, keep], out[:, keep], atol=1e-6, rtol=0)
    assert not torch.allclose(out2[:, ~keep], out[:, ~keep])


@pytest.mark.parametrize("kv_heads", [2, 1])  # 1: fewer key/value heads than ranks
@pytest.mark.parametrize("backend_name", ["segments", "dense", "npu"])
def test_split_attention_matches_unsplit_row(backend_name, kv_heads):
    run_ranks(_attention_rank, backend_name, kv_heads)


def _model_rank(rank: int) -> None:
    torch.manual_seed(0)
    model = MindVL.from_config(tiny_config(VOCAB, PAD_ID, "qwen3_moe"))
    gen = torch.Generator().manual_seed(1)
    samples = [
        make_sample(gen, [(1, 4, 8)], text=9),
        make_sample(gen, [], text=14),
        make_sample(gen, [(1, 4, 4)], text=6),
    ]
    batch = pack(samples, pad_to=67)  # odd: the split pads it by one token
    bare = pack(samples)  # 45 tokens, no padding
    assert bare.input_ids.shape[1] == bare.cu_seqlens[-1] == 45
    model.train()
    with torch.no_grad():
        bare_ref = float(model(bare).loss_sum)
    ref = model(batch)
    (ref.loss_sum + ref.router.aux_sum + ref.router.z_sum).backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    apply_context_parallel(model, dist.group.WORLD)
    part = model(batch)
    (part.loss_sum + part.router.aux_sum + part.router.z_sum).backward()
    sums = torch.stack([part.loss_sum.detach(), torch.tensor(float(part.loss_tokens))])
    dist.all_reduce(sums)
    assert sums[0] == pytest.approx(float(ref.loss_sum), rel=1e-5)
    assert int(sums[1]) == ref.loss_tokens
    assert 0 < part.loss_tokens < ref.loss_tokens  # both ranks hold loss tokens
    # every cp rank holds the whole row's router statistics
    for a, b in ((part.router.aux_sum, ref.router.aux_sum), (part.router.z_sum, ref.router.z_sum)):
        assert float(a) == pytest.approx(float(b), rel=1e-5)
    assert part.router.tokens == ref.router.tokens
    torch.testing.assert_close(part.router.expert_counts, ref.router.expert_counts)
    # gradients summed over the cp ranks (what FSDP2 reduces) are the unsplit ones
    for name, p in model.named_parameters():
        if name not in ref_grads:
            continue
        grad = p.grad.clone()
        dist.all_reduce(grad)
        torch.testing.assert_close(grad, ref_grads[name], atol=2e-5, rtol=1e-4, msg=name)
    # a row without padding and of odd length: the split starts a padding block
    with torch.no_grad():
        bare_sum = model(bare).loss_sum
    dist.all_reduce(bare_sum)
    assert float(bare_sum) == pytest.approx(bare_ref, rel=1e-5)


def test_split_moe_model_matches_unsplit_row():
    run_ranks(_model_rank)


def test_cp_layouts_the_model_cannot_take_are_one_line_errors():
    facts = ModelFacts(llm_heads=4, llm_kv_heads=2, llm_layers=2, vision_heads=2)
    for spec, world, message in (
        (ParallelSpec(cp=3), 3, "parallel.cp = 3 does not divide the 4 LLM attention heads"),
        (ParallelSpec(cp=4, tp=2), 8, "parallel.cp x tp = 8 does not divide the 4 LLM attention"),
    ):
        with pytest.raises(UserError, match=message) as err:
            resolve(spec, None, world).check(facts)
        assert "\n" not in str(err.value)
    resolve(ParallelSpec(cp=4), None, 4).check(facts)  # 2 key/value heads: each repeated


def test_image_shares_split_a_rows_images_by_patches():
    assert image_shares([4, 4, 4, 4], 2) == [range(0, 2), range(2, 4)]
    assert image_shares([4, 16, 4], 2) == [range(0, 2), range(2, 3)]  # images stay whole
    assert image_shares([16], 2) == [range(0, 1), range(1, 1)]  # rank 1: the dummy image
    assert image_shares([1] * 6, 3) == [range(0, 2), range(2, 4), range(4, 6)]
    for patches, size in (([3, 1, 7, 2, 2], 4), ([5], 3), ([2, 2, 2], 2)):
        shares = image_shares(patches, size)
        assert len(shares) == size and [i for s in shares for i in s] == list(range(len(patches)))

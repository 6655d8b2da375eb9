"""Device selection, freezing, NPU kernel arguments and DDP/FSDP2 wrapping on CPU."""

from __future__ import annotations

import gc
import os

import pytest
import torch
import torch.distributed as dist

from mindvl.common.errors import UserError
from mindvl.trainer.batch import PackedBatch
from mindvl.trainer.device.attention import segment_ends
from mindvl.trainer.device.mesh import build_mesh, resolve
from mindvl.trainer.device.npu_attention import (
    CAUSAL_MASK_SIZE,
    fusion_call,
    reference_fusion_attention,
)
from mindvl.trainer.device.parallel import no_grad_sync, parallelize, unwrap
from mindvl.trainer.device.select import select_device
from mindvl.trainer.model import MindVL
from mindvl.trainer.model.freeze import format_report, parameter_report, set_trainable
from mindvl.trainer.model.tiny import tiny_config
from mindvl.trainer.stage_config import ParallelSpec


def test_device_selection_on_cpu(monkeypatch):
    monkeypatch.delenv("MINDVL_DEVICE", raising=False)
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    choice = select_device()
    assert (choice.type, choice.dist_backend) == ("cpu", "gloo")
    assert choice.device(3) == torch.device("cpu")
    monkeypatch.setenv("MINDVL_DEVICE", "cpu")
    assert select_device().type == "cpu"
    with pytest.raises(UserError, match="unknown device 'tpu'"):
        select_device("tpu")
    with pytest.raises(UserError, match="'npu' requested"):
        select_device("npu")


def test_freezing_and_report():
    model = MindVL(tiny_config(64, 5, tie_word_embeddings=True))
    set_trainable(model, ["projector"])
    rows = {r.part: r for r in parameter_report(model)}
    n_proj = sum(p.numel() for p in model.projector.parameters())
    n_llm = sum(p.numel() for p in set(model.llm.parameters()))  # tied embedding once
    assert rows["projector"].trainable == n_proj and rows["projector"].frozen == 0
    assert rows["llm"].trainable == 0 and rows["llm"].frozen == n_llm
    assert rows["vision"].trainable == 0 and rows["vision"].frozen > 0
    set_trainable(model, ["vision", "llm"])
    rows = {r.part: r for r in parameter_report(model)}
    assert rows["projector"].frozen == n_proj and rows["llm"].trainable == n_llm
    assert "total" in format_report(parameter_report(model))
    with pytest.raises(ValueError, match="unknown model parts"):
        set_trainable(model, ["merger"])


def test_npu_kernel_arguments():
    """TND layout, host lists without a leading 0, causal mask and sparse mode per tower."""
    seen = {}

    def kernel(q, k, v, head_num, layout, **kw):
        seen.update(q=q.shape, k=k.shape, head_num=head_num, layout=layout, **kw)
        return reference_fusion_attention(q, k, v, head_num, layout, **kw)

    torch.manual_seed(0)
    q, k, v = torch.randn(1, 4, 10, 8), torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8)
    ends = segment_ends([0, 3, 7], total=10)
    assert ends == [3, 7, 10]  # padding after 7 is its own segment

    out = fusion_call(kernel, q, k, v, ends, scaling=0.5, causal=True, dropout=0.0)
    assert seen["q"] == (10, 4, 8) and seen["k"] == (10, 2, 8) and seen["head_num"] == 4
    assert seen["layout"] == "TND" and seen["sparse_mode"] == 3 and seen["scale"] == 0.5
    assert seen["actual_seq_qlen"] == seen["actual_seq_kvlen"] == [3, 7, 10]
    mask = seen["atten_mask"]
    assert mask.shape == (CAUSAL_MASK_SIZE, CAUSAL_MASK_SIZE) and mask.dtype == torch.bool
    assert mask[0, 1] and not mask[1, 0] and not mask[5, 5]
    assert out.shape == (1, 10, 4, 8)

    # the same computed by SDPA per segment
    kk, vv = k.repeat_interleave(2, 1), v.repeat_interleave(2, 1)
    ref = torch.cat(
        [
            torch.nn.functional.scaled_dot_product_attention(
                q[:, :, a:b], kk[:, :, a:b], vv[:, :, a:b], is_causal=True, scale=0.5
            )
            for a, b in [(0, 3), (3, 7), (7, 10)]
        ],
        dim=2,
    )
    torch.testing.assert_close(out, ref.transpose(1, 2))

    seen.clear()
    fusion_call(kernel, q, k, v, [4, 10], scaling=0.5, causal=False, dropout=0.0)
    assert seen["sparse_mode"] == 0 and "atten_mask" not in seen
    with pytest.raises(ValueError, match="cover 7 tokens"):
        fusion_call(kernel, q, k, v, [3, 7], scaling=0.5, causal=True, dropout=0.0)


@pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("torch_npu") is None, reason="no torch_npu"
)
def test_real_npu_kernel_matches_reference():
    import torch_npu

    if not torch.npu.is_available():
        pytest.skip("torch_npu without an NPU")
    q, k, v = (torch.randn(1, 4, 64, 64, dtype=torch.float16) for _ in range(3))
    ends = [20, 64]
    got = fusion_call(
        torch_npu.npu_fusion_attention, *(x.npu() for x in (q, k, v)), ends, 0.125, True, 0.0
    )
    ref = fusion_call(
        reference_fusion_attention, q.float(), k.float(), v.float(), ends, 0.125, True, 0.0
    )
    torch.testing.assert_close(got.float().cpu(), ref, atol=2e-3, rtol=2e-3)


@pytest.fixture
def single_rank_group(tmp_path):
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    yield
    dist.destroy_process_group()
    # free the gloo group here, where its threads live: left to the GC, a rank forked later
    # (dist_helpers.spawn) collects it and its destructor waits on threads the fork lacks
    gc.collect()


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_parallel_wrappers_train_on_cpu(single_rank_group, strategy):
    torch.manual_seed(0)
    model = MindVL(tiny_config(64, 5)).train()
    set_trainable(model, ["projector", "llm"])
    ids = torch.randint(10, 64, (1, 12))
    batch = PackedBatch(
        input_ids=ids,
        labels=ids.clone(),
        position_ids=torch.tensor([list(range(5)) + list(range(7))]),
        cu_seqlens=[0, 5, 12],
    )
    with torch.no_grad():
        expected = model(batch).loss_sum.item()
    dims = resolve(ParallelSpec(), strategy, 1)
    wrapped = parallelize(model, dims, build_mesh("cpu", dims), torch.device("cpu"))
    assert unwrap(wrapped) is model
    with no_grad_sync(wrapped):  # first micro-batch: gradients accumulate locally
        out = wrapped(batch)
        out.loss_sum.backward()
    assert out.loss_sum.item() == pytest.approx(expected, rel=1e-5)
    assert out.loss_tokens == 12 - 2
    wrapped(batch).loss_sum.backward()  # last micro-batch: gradients are reduced
    # the zero-weighted dummy image runs the tower, so the projector gets a (zero) gradient
    assert model.projector.fc2.weight.grad is not None
    assert all(p.grad is None for p in model.vision.parameters())
    assert model.llm.get_input_embeddings().weight.grad is not None

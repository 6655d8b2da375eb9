"""Tensor + sequence parallelism on gloo: TP=2 (2 ranks) and FSDP=2 x TP=2 (4 ranks) train
like one process (fp32, 3 steps: losses, grad norms, final weights) for a dense and a MoE
tiny model; the global grad norm over the mixed 1-D/2-D meshes is the 1-process one."""

from __future__ import annotations

import pytest
import torch
from dist_helpers import spawn

from mindvl.trainer.data.synth_shards import train_test_tokenizer, write_stage
from mindvl.trainer.loop import run_stage
from mindvl.trainer.model import MindVL
from mindvl.trainer.stage_config import StageConfig

PARTS = ("loss", "grad_norm")
MOE_PARTS = ("ce_loss", "aux_loss", "z_loss")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("tp")
    tok = train_test_tokenizer(d / "tok")
    write_stage(d / "stage", tok, n_samples=32, n_shards=2, long_tail=60)
    return StageConfig.model_validate(
        {
            "name": "tp",
            "data": {"manifest": str(d / "stage"), "streams": 2},
            "seq_len": 256,
            "tokens_per_step": 512,
            "steps": 3,
            "init": {"config": "tiny"},
            "optimizer": {"lr": 0.003, "grad_clip": 0.5},
            "moe": {"aux_loss_coef": 0.05, "z_loss_coef": 0.01},
            "threads": 1,
            "device": "cpu",
            "packing": {"buffer_size": 8, "vit_patch_budget": 2048},
        }
    )


def assert_same_run(single: list[dict], rows: list[dict], one_dir, other_dir) -> None:
    assert [r["step"] for r in rows] == [1, 2, 3]
    for a, b in zip(single, rows, strict=True):
        assert b["loss_tokens"] == a["loss_tokens"]
        for key in PARTS + (MOE_PARTS if "aux_loss" in a else ()):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
    final = MindVL.from_pretrained(other_dir / "model").state_dict()
    ref = MindVL.from_pretrained(one_dir / "model").state_dict()
    assert final.keys() == ref.keys()
    for k in final:  # full tensors gathered back from the tp (and fsdp) shards
        torch.testing.assert_close(final[k], ref[k], atol=2e-5, rtol=1e-4, msg=k)


@pytest.mark.parametrize("model", ["tiny", "tiny_qwen3_moe"])
@pytest.mark.parametrize(("parallel", "world"), [({"tp": 2}, 2), ({"tp": 2, "dp_shard": 2}, 4)])
def test_tp_matches_one_process(tmp_path, base, model, parallel, world):
    cfg = base.model_copy(update={"init": base.init.model_copy(update={"config": model})})
    single = run_stage(cfg, tmp_path / "one")
    tp = StageConfig.model_validate({**cfg.model_dump(), "parallel": parallel})
    rows = spawn(tp, tmp_path / "tp", world)
    assert_same_run(single, rows, tmp_path / "one", tmp_path / "tp")

"""MoE in the loop: router losses and load logged, 2 gloo ranks = 1 process, bias updates
saved and resumed, parameter counts printed."""

from __future__ import annotations

import shutil

import pytest
import torch
from dist_helpers import spawn, tiny_stage

from mindvl.common.errors import UserError
from mindvl.trainer.loop import run_stage
from mindvl.trainer.model import MindVL

PARTS = ("loss", "ce_loss", "aux_loss", "z_loss")


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return tiny_stage(
        tmp_path_factory, "moe", init={"config": "tiny_deepseek_v3"},
        moe={"aux_loss_coef": 0.05, "z_loss_coef": 0.01, "bias_update_rate": 0.01},
    )  # fmt: skip


def biases(model_dir) -> list[torch.Tensor]:
    model = MindVL.from_pretrained(model_dir)
    return [b for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")]


def test_two_ranks_match_one_with_router_losses_and_bias_updates(tmp_path, config, capsys):
    single = run_stage(config, tmp_path / "one")
    out = capsys.readouterr().out
    assert "active per token" in out and "top-2 of 4 experts (sigmoid)" in out
    cfg = config.model_copy(update={"distributed": "fsdp", "checkpoint_every": 2})
    rows = spawn(cfg, tmp_path / "two", 2)
    for a, b in zip(single, rows, strict=True):
        for key in PARTS:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key
        assert b["loss"] == pytest.approx(
            b["ce_loss"] + 0.05 * b["aux_loss"] + 0.01 * b["z_loss"], rel=1e-9
        )
        load = {k: v for k, v in a.items() if k.startswith("experts_l1_")}
        assert load.keys() == {"experts_l1_min", "experts_l1_max", "experts_l1_cv"}
        assert all(b[k] == pytest.approx(v, rel=1e-6, abs=1e-9) for k, v in load.items())
    # the biases moved (aux-loss-free balancing), by whole rate steps, equally on both runs
    one, two = biases(tmp_path / "one" / "model"), biases(tmp_path / "two" / "model")
    assert len(one) == 1 and one[0].abs().sum() > 0
    assert torch.allclose((one[0] / 0.01).round(), one[0] / 0.01, atol=1e-4)
    torch.testing.assert_close(one[0], two[0])
    # resume both ranks from step 2: step 3 repeats exactly (biases come from the checkpoint)
    shutil.rmtree(tmp_path / "two" / "checkpoints" / "step-00000003")
    again = spawn(cfg, tmp_path / "two", 2, resume=True)
    assert [again[2][k] for k in PARTS] == [rows[2][k] for k in PARTS]


def test_coefficients_default_to_the_llm_config_and_bias_needs_a_biased_router(config, tmp_path):
    from mindvl.trainer.model.tiny import tiny_config
    from mindvl.trainer.moe_training import MoETraining

    qwen = MindVL(tiny_config(64, 5, llm_type="qwen3_moe"))
    assert MoETraining(config.moe.model_copy(update={"aux_loss_coef": None, "bias_update_rate": 0}),
                       qwen).aux_coef == 0.01  # fmt: skip
    with pytest.raises(UserError, match="bias_update_rate needs routers with e_score_correction"):
        MoETraining(config.moe, qwen)

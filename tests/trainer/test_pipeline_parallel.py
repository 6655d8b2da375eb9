"""Pipeline parallelism on gloo: PP=2 (2 ranks) trains like one process (fp32, 3 steps:
losses, grad norms, final weights), for a dense LLM with tied embeddings (1F1B; and
Interleaved1F1B and InterleavedZeroBubble with 2 stages per rank), an MoE LLM whose
router losses span both stages (GPipe), untied 4-layer LLMs under the V-shaped
ZBVZeroBubble (dense and MoE) and DualPipeV, a warmup that trains only the projector (the last
stage holds nothing trainable), PP=2 x FSDP=2 on 4 ranks likewise (1F1B, and
ZBVZeroBubble with EP=2 for the MoE LLM), and resume exactly from a checkpoint written under PP=2
(also by one process, for the V-placed stages too); stage placement, splits and bad layouts
fail in one line."""

from __future__ import annotations

import shutil

import pytest
import torch
from dist_helpers import assert_same_run, spawn, tiny_stage

from mindvl.common.errors import UserError
from mindvl.trainer.data.stream import StageData
from mindvl.trainer.device.pipeline import check_schedule, stage_indices
from mindvl.trainer.device.pipeline_stage import cu_seqlens_of, segment_ids, stage_layer_ranges
from mindvl.trainer.loop import run_stage
from mindvl.trainer.model import MindVL
from mindvl.trainer.model.tiny import tiny_config
from mindvl.trainer.stage_config import StageConfig

DENSE = ("loss", "grad_norm")
MOE = ("loss", "ce_loss", "aux_loss", "z_loss", "grad_norm")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tiny_stage(
        tmp_path_factory, "pp", streams=4, tokens_per_step=1024,
        optimizer={"lr": 0.003, "grad_clip": 0.5},
    )  # fmt: skip


FOUR_LAYERS = {  # name: (LLM type, tied embeddings)
    "tiny4": ("qwen3", True),
    "tiny4-untied": ("qwen3", False),
    "tiny4-moe-untied": ("qwen3_moe", False),
}


def four_layer_tiny(cfg: StageConfig, llm_type: str = "qwen3", tied: bool = True) -> dict:
    """A tiny preset with a 4-layer LLM (2 ranks x 2 virtual stages)."""
    data = StageData.open(cfg.data.manifest, cfg.data.tokenizer, verify=False)
    eos = data.tokenizer.hf.convert_tokens_to_ids("<|endoftext|>")
    config = tiny_config(
        len(data.tokenizer.hf), data.tokenizer.image_pad_id, llm_type, eos_token_id=eos,
        tie_word_embeddings=tied,
    )  # fmt: skip
    return config.model_copy(update={"llm": {**config.llm, "num_hidden_layers": 4}}).model_dump()


@pytest.mark.parametrize(
    ("model", "moe", "layout"),
    [
        ("tiny", None, {"pp_schedule": "1F1B"}),
        ("tiny_qwen3_moe", {"aux_loss_coef": 0.05, "z_loss_coef": 0.01}, {"pp_schedule": "GPipe"}),
        ("tiny4", None, {"pp_schedule": "Interleaved1F1B", "pp_stages_per_rank": 2}),
        # zero bubble: each stage's backward split into input and weight gradients
        ("tiny4", None, {"pp_schedule": "InterleavedZeroBubble", "pp_stages_per_rank": 2}),
        # V-shaped: rank 0 holds the first and the last stage (untied embeddings)
        ("tiny4-untied", None, {"pp_schedule": "ZBVZeroBubble", "pp_stages_per_rank": 2}),
        ("tiny4-untied", None, {"pp_schedule": "DualPipeV", "pp_stages_per_rank": 2}),
        (
            "tiny4-moe-untied",
            {"aux_loss_coef": 0.05, "z_loss_coef": 0.01},
            {"pp_schedule": "ZBVZeroBubble", "pp_stages_per_rank": 2},
        ),
    ],
)
def test_pp2_matches_one_process(tmp_path, base, model, moe, layout):
    init = four_layer_tiny(base, *FOUR_LAYERS[model]) if model in FOUR_LAYERS else model
    data = {**base.model_dump(), "init": {"config": init}}
    if moe is not None:
        data["moe"] = moe
    cfg = StageConfig.model_validate(data)
    single = run_stage(cfg, tmp_path / "one")
    layout = {"pp": 2, **layout}
    pp = StageConfig.model_validate({**data, "parallel": layout, "checkpoint_every": 2})
    rows = spawn(pp, tmp_path / "pp2", 2)
    parts = MOE if moe else DENSE
    assert_same_run(single, rows, tmp_path / "one", tmp_path / "pp2", parts)
    # resume both stages from step 2: step 3 repeats exactly, and its update (which needs
    # the stages' optimizer states back) gives the same final weights
    first = MindVL.from_pretrained(tmp_path / "pp2" / "model").state_dict()
    shutil.rmtree(tmp_path / "pp2" / "checkpoints" / "step-00000003")
    again = spawn(pp, tmp_path / "pp2", 2, resume=True)
    assert [again[2][k] for k in parts] == [rows[2][k] for k in parts]
    final = MindVL.from_pretrained(tmp_path / "pp2" / "model").state_dict()
    assert all(torch.equal(final[k], first[k]) for k in first)
    if model in ("tiny", "tiny4-untied"):  # resumed by one process: the same final weights
        shutil.copytree(tmp_path / "pp2", tmp_path / "cross")
        shutil.rmtree(tmp_path / "cross" / "checkpoints" / "step-00000003")
        run_stage(cfg, tmp_path / "cross", resume=True)
        cross = MindVL.from_pretrained(tmp_path / "cross" / "model").state_dict()
        for k in first:
            torch.testing.assert_close(cross[k], first[k], atol=1e-6, rtol=1e-5, msg=k)


def test_pp2_with_a_frozen_last_stage_trains_the_projector_like_one_process(tmp_path, base):
    cfg = base.model_copy(update={"trainable": ["projector"]})
    single = run_stage(cfg, tmp_path / "one")
    pp = StageConfig.model_validate({**cfg.model_dump(), "parallel": {"pp": 2}})
    rows = spawn(pp, tmp_path / "pp2", 2)
    assert_same_run(single, rows, tmp_path / "one", tmp_path / "pp2", DENSE, trains_llm=False)
    assert rows[-1]["grad_norm"] > 0


@pytest.mark.parametrize("schedule", ["1F1B", "ZBVZeroBubble"])
def test_pp2_times_fsdp2_on_four_ranks_matches_one_process(tmp_path, base, schedule):
    data, parts = base.model_dump(), DENSE
    layout = {"pp": 2, "dp_shard": 2, "pp_schedule": schedule}
    if schedule == "ZBVZeroBubble":  # split backward with FSDP2 sharding; MoE carry
        data["init"] = {"config": four_layer_tiny(base, *FOUR_LAYERS["tiny4-moe-untied"])}
        data["moe"], parts = {"aux_loss_coef": 0.05, "z_loss_coef": 0.01}, MOE
        data["tokens_per_step"] = 2048  # 4 rows per data-parallel rank: 2 per stage
        # experts split over ep = dp_shard; two stages per rank save whole expert tensors
        layout.update(pp_stages_per_rank=2, ep=2)
    single = run_stage(StageConfig.model_validate(data), tmp_path / "one")
    cfg = StageConfig.model_validate({**data, "parallel": layout})
    rows = spawn(cfg, tmp_path / "pp2x2", 4)
    assert_same_run(single, rows, tmp_path / "one", tmp_path / "pp2x2", parts)


def test_schedule_placement_and_refusals():
    assert stage_indices(0, 2, 2, "Interleaved1F1B") == [0, 2]
    assert stage_indices(1, 3, 2, "InterleavedZeroBubble") == [1, 4]
    assert [stage_indices(r, 3, 2, "DualPipeV") for r in range(3)] == [[0, 5], [1, 4], [2, 3]]
    check_schedule("ZBVZeroBubble", 2, tied=False)
    for args, message in (
        (("ZBVZeroBubble", 3, False), "ZBVZeroBubble needs pp_stages_per_rank 2 \\(got 3\\)"),
        (("GPipe", 2, False), "GPipe needs pp_stages_per_rank 1 \\(got 2\\)"),
        (("DualPipeV", 2, True), "puts the first and the last stage on one rank"),
    ):
        with pytest.raises(UserError, match=message) as err:
            check_schedule(*args)
        assert "\n" not in str(err.value)


def test_stage_split_and_row_segments():
    assert stage_layer_ranges(5, 2, None) == [range(0, 2), range(2, 5)]
    assert stage_layer_ranges(4, 2, [1, 3]) == [range(0, 1), range(1, 4)]
    for bad in ([2, 2, 0], [1, 2]):
        with pytest.raises(UserError, match="parallel.pp_layers") as err:
            stage_layer_ranges(4, len(bad) if len(bad) == 3 else 2, bad)
        assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="4 pipeline stages need at least 4 LLM layers"):
        stage_layer_ranges(2, 4, None)
    seg = segment_ids([0, 3, 5], 8)
    assert seg.tolist() == [0, 0, 0, 1, 1, -1, -1, -1]
    assert cu_seqlens_of(seg[None]) == [0, 3, 5]


def test_pp_layouts_fail_before_any_work(tmp_path, base):
    too_few = StageConfig.model_validate({**base.model_dump(), "parallel": {"pp": 4}})
    with pytest.raises(Exception, match="need at least 4 LLM layers"):
        spawn(too_few, tmp_path / "bad", 4)
    assert not (tmp_path / "bad" / "metrics.jsonl").exists()
    with pytest.raises(ValueError, match="pp_stages_per_rank and pp_layers need pp > 1"):
        StageConfig.model_validate({**base.model_dump(), "parallel": {"pp_layers": [2]}})
    one_stage_each = {"pp": 2, "pp_schedule": "Interleaved1F1B"}
    cfg = StageConfig.model_validate({**base.model_dump(), "parallel": one_stage_each})
    with pytest.raises(Exception, match="Interleaved1F1B needs pp_stages_per_rank >= 2"):
        spawn(cfg, tmp_path / "bad2", 2)
    assert not (tmp_path / "bad2" / "metrics.jsonl").exists()

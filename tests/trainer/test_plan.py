"""``mindvl train plan``: each planned rank lays the model out on the meta device under a
fake process group, as training would; its held parameters add up over the ranks to the
whole model (FSDP2, EP; PP with the tied embedding on both end stages), impossible layouts
are one-line errors, and the paper's 671B-A37B model plans on 1,024 ranks without a device."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from dist_helpers import assert_fork_safe

from mindvl.common.config import load_model
from mindvl.common.errors import UserError
from mindvl.trainer.cli import train
from mindvl.trainer.model import MindVLConfig
from mindvl.trainer.model.tiny import tiny_config
from mindvl.trainer.plan import plan_ranks
from mindvl.trainer.stage_config import StageConfig

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


def stage(parallel: dict, trainable=("all",)) -> StageConfig:
    return StageConfig.model_validate(
        {"name": "plan", "data": {"manifest": "unused"}, "seq_len": 256,
         "tokens_per_step": 2048, "steps": 1, "init": {"config": "tiny"},
         "trainable": list(trainable), "parallel": parallel}
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _fork_safe():
    assert_fork_safe()


def test_held_pieces_add_up_to_the_model():
    moe = tiny_config(300, 5, "qwen3_moe")
    tied = 300 * moe.llm["hidden_size"]  # input embedding = LM head, on both end stages
    for parallel, world, extra in (
        ({"dp_shard": 4}, 4, 0),
        ({"dp_shard": 2, "ep": 2}, 2, 0),  # 2 of 4 experts per rank, FSDP2 over 1 rank each
        ({"pp": 2}, 2, tied),
    ):
        rows = plan_ranks(stage(parallel), moe, world, ranks=list(range(world)))
        total = rows[0]["model_params"]
        assert sum(r["params"] for r in rows) == total + extra, parallel
        assert all(r["params"] < total for r in rows)
    # a frozen part holds weights only: 4 bytes, the trainable parts 16
    frozen = plan_ranks(stage({}, trainable=["projector"]), moe, 1)[0]
    assert 0 < frozen["trainable"] < frozen["params"]
    assert frozen["state_bytes"] == 4 * frozen["params"] + 12 * frozen["trainable"]


def test_impossible_layout_is_a_one_line_error():
    with pytest.raises(UserError, match="parallel.tp = 3 does not divide") as err:
        plan_ranks(stage({"tp": 3}), tiny_config(300, 5), 3)
    assert "\n" not in str(err.value)


def test_paper_model_plans_on_1024_ranks(tmp_path):
    stage_yaml = tmp_path / "stage.yaml"
    stage_yaml.write_text(stage({}).model_dump_json())
    args = ["plan", str(stage_yaml), "--world", "1024",
            "--model", str(PIPELINES / "models" / "mindvl-671b-a37b.yaml"),
            "--parallel", "{pp: 16, dp_shard: 64, ep: 64}"]  # fmt: skip
    result = CliRunner().invoke(train, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("1024 ranks: pp 16 x dp_replicate 1 x dp_shard 64")
    assert len(lines) == 1 + 16 and lines[-1].startswith("rank 960 (pp 15,")
    config = load_model(PIPELINES / "models" / "mindvl-671b-a37b.yaml", MindVLConfig)
    rows = plan_ranks(stage({"pp": 16, "dp_shard": 64, "ep": 64}), config, 1024, ranks=[960])
    # 4 of 256 experts of each of its 4 MoE layers, everything else sharded 64 ways
    assert rows[0]["params"] / rows[0]["model_params"] < 0.002

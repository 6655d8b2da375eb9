"""The ``parallel:`` block resolved to mesh degrees: arithmetic, old spellings, one-line errors."""

from __future__ import annotations

import pytest

from mindvl.common.errors import UserError
from mindvl.trainer.device.mesh import ModelFacts, ParallelDims, resolve
from mindvl.trainer.stage_config import ParallelSpec

DENSE = ModelFacts(llm_heads=4, llm_kv_heads=2, llm_layers=2, vision_heads=2)


def test_dp_shard_takes_the_ranks_the_others_leave():
    dims = resolve(ParallelSpec(tp=2, pp=2), None, 8)
    assert (dims.pp, dims.dp_replicate, dims.dp_shard, dims.cp, dims.tp) == (2, 1, 2, 1, 2)
    assert dims.dp == 2 and dims.sharded
    assert resolve(ParallelSpec(), None, 1) == ParallelDims(world=1)
    assert resolve(ParallelSpec(dp_replicate=2), None, 6).dp_shard == 3


def test_data_parallel_rank_ignores_tp_cp_and_pp():
    dims = ParallelDims(world=16, pp=2, dp_replicate=1, dp_shard=2, cp=2, tp=2)
    # tp is the fastest axis, then cp, dp_shard, dp_replicate, pp
    assert dims.coords(0) == {"tp": 0, "cp": 0, "dp_shard": 0, "dp_replicate": 0, "pp": 0}
    assert dims.coords(13) == {"tp": 1, "cp": 0, "dp_shard": 1, "dp_replicate": 0, "pp": 1}
    # ranks differing only in tp/cp/pp read the same batch
    assert {dims.dp_rank(r) for r in (0, 1, 2, 3, 8, 9, 10, 11)} == {0}
    assert {dims.dp_rank(r) for r in (4, 5, 6, 7, 12, 13, 14, 15)} == {1}
    hsdp = ParallelDims(world=4, dp_replicate=2, dp_shard=2)
    assert [hsdp.dp_rank(r) for r in range(4)] == [0, 1, 2, 3]


def test_old_distributed_spelling_still_works():
    ddp = resolve(ParallelSpec(), "ddp", 2)
    assert ddp.ddp and ddp.dp_replicate == 2 and ddp.dp == 2
    fsdp = resolve(ParallelSpec(ep=2), "fsdp", 4)
    assert (fsdp.dp_shard, fsdp.ep, fsdp.ddp) == (4, 2, False)
    assert resolve(ParallelSpec(), "none", 1).world == 1


@pytest.mark.parametrize(
    ("spec", "distributed", "world", "message"),
    [
        (ParallelSpec(tp=3), None, 4, "dp_replicate x cp x tp x pp = 3 does not divide the 4"),
        (ParallelSpec(dp_shard=2, tp=1), None, 4, "dp_shard 2 .* = 2 ranks, but the world has 4"),
        (ParallelSpec(tp=0), None, 2, "parallel.tp must be >= 1"),
        (ParallelSpec(tp=2), "fsdp", 2, "cannot be combined with parallel.tp"),
        (ParallelSpec(), "none", 2, "2 processes with distributed: none"),
        (ParallelSpec(ep=4), None, 2, "parallel.ep = 4 must divide dp_shard = 2"),
    ],
)
def test_impossible_layouts_fail_in_one_line(spec, distributed, world, message):
    with pytest.raises(UserError, match=message) as err:
        resolve(spec, distributed, world)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("dims", "message"),
    [
        (ParallelDims(world=8, tp=8), "parallel.tp = 8 does not divide the 4 LLM attention heads"),
        (ParallelDims(world=4, tp=4), "parallel.tp = 4 does not divide the 2 LLM key/value heads"),
        (ParallelDims(world=4, pp=4), "parallel.pp = 4 stages need at least 4 LLM layers"),
    ],
)
def test_layouts_the_model_cannot_take_fail_in_one_line(dims, message):
    with pytest.raises(UserError, match=message) as err:
        dims.check(DENSE)
    assert "\n" not in str(err.value)
    ParallelDims(world=2, tp=2).check(DENSE)  # a layout that fits passes

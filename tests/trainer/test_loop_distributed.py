"""2 gloo processes on CPU give the losses of 1 process with the same global batch."""

from __future__ import annotations

import shutil

import pytest
from dist_helpers import spawn, tiny_stage

from mindvl.trainer.loop import run_stage


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return tiny_stage(tmp_path_factory, "dist")


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one_and_resume(tmp_path, config, strategy):
    single = run_stage(config, tmp_path / "one")
    cfg = config.model_copy(update={"distributed": strategy, "checkpoint_every": 2})
    rows = spawn(cfg, tmp_path / "two", 2)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for a, b in zip(single, rows, strict=True):
        assert b["llm_tokens"] == a["llm_tokens"] and b["loss_tokens"] == a["loss_tokens"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
    assert single[0]["loss"] != pytest.approx(single[-1]["loss"], abs=1e-3)  # it does train
    assert (tmp_path / "two" / "model" / "model.safetensors").is_file()
    # resume both ranks from step 2: step 3 repeats exactly (optimizer state, loaders, RNG)
    shutil.rmtree(tmp_path / "two" / "checkpoints" / "step-00000003")
    again = spawn(cfg, tmp_path / "two", 2, resume=True)
    assert [r["step"] for r in again] == [1, 2, 3]
    assert again[2]["loss"] == rows[2]["loss"] and again[2]["grad_norm"] == rows[2]["grad_norm"]

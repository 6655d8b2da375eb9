"""2 gloo processes on CPU give the losses of 1 process with the same global batch."""

from __future__ import annotations

import gc
import json
import os
import shutil
import socket

import pytest
import torch
import torch.multiprocessing as mp

from mindvl.trainer.data.synth_shards import train_test_tokenizer, write_stage
from mindvl.trainer.loop import run_stage
from mindvl.trainer.stage_config import StageConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, cfg_json: str, out: str, port: int, resume: bool = False) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    run_stage(StageConfig.model_validate_json(cfg_json), out, resume=resume)


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    tok = train_test_tokenizer(d / "tok")
    write_stage(d / "stage", tok, n_samples=48, n_shards=4, long_tail=60)
    return StageConfig.model_validate(
        {
            "name": "dist",
            "data": {"manifest": str(d / "stage"), "streams": 2},
            "seq_len": 256,
            "tokens_per_step": 512,
            "steps": 3,
            "init": {"config": "tiny"},
            "optimizer": {"lr": 0.003},
            "threads": 1,
            "device": "cpu",
            "packing": {"buffer_size": 8, "vit_patch_budget": 2048},
        }
    )


def _spawn(cfg: StageConfig, out, resume: bool = False) -> list[dict]:
    gc.collect()  # see dist_helpers.spawn: no gloo garbage may reach a forked rank
    mp.start_processes(
        _rank_main,
        args=(cfg.model_dump_json(), str(out), _free_port(), resume),
        nprocs=2,
        # fork is fast, but where a GPU is visible the first backward (the single-process
        # run above) starts autograd's device threads, and a forked child then cannot run
        # backward ("Unable to handle autograd's threading ..."; seen on an H100)
        start_method="spawn" if torch.cuda.is_available() else "fork",
    )
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one_and_resume(tmp_path, config, strategy):
    single = run_stage(config, tmp_path / "one")
    cfg = config.model_copy(update={"distributed": strategy, "checkpoint_every": 2})
    rows = _spawn(cfg, tmp_path / "two")
    assert [r["step"] for r in rows] == [1, 2, 3]
    for a, b in zip(single, rows, strict=True):
        assert b["llm_tokens"] == a["llm_tokens"] and b["loss_tokens"] == a["loss_tokens"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
    assert single[0]["loss"] != pytest.approx(single[-1]["loss"], abs=1e-3)  # it does train
    assert (tmp_path / "two" / "model" / "model.safetensors").is_file()
    # resume both ranks from step 2: step 3 repeats exactly (optimizer state, loaders, RNG)
    shutil.rmtree(tmp_path / "two" / "checkpoints" / "step-00000003")
    again = _spawn(cfg, tmp_path / "two", resume=True)
    assert [r["step"] for r in again] == [1, 2, 3]
    assert again[2]["loss"] == rows[2]["loss"] and again[2]["grad_norm"] == rows[2]["grad_norm"]

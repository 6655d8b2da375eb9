"""2 gloo processes on CPU give the losses of 1 process with the same global batch."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch.multiprocessing as mp

from mindvl.trainer.data.synth_shards import train_test_tokenizer, write_stage
from mindvl.trainer.loop import run_stage
from mindvl.trainer.stage_config import StageConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, cfg_json: str, out: str, port: int) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    run_stage(StageConfig.model_validate_json(cfg_json), out)


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


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one(tmp_path, config, strategy):
    single = run_stage(config, tmp_path / "one")
    cfg = config.model_copy(update={"distributed": strategy})
    mp.start_processes(
        _rank_main,
        args=(cfg.model_dump_json(), str(tmp_path / "two"), _free_port()),
        nprocs=2,
        start_method="fork",
    )
    rows = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for a, b in zip(single, rows, strict=True):
        assert b["llm_tokens"] == a["llm_tokens"] and b["loss_tokens"] == a["loss_tokens"]
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
    assert single[0]["loss"] != pytest.approx(single[-1]["loss"], abs=1e-3)  # it does train
    assert (tmp_path / "two" / "model" / "model.safetensors").is_file()

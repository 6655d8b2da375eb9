"""SIGKILL a training process mid-run, resume: later losses equal an uninterrupted run's
(dense, and a DeepSeek-V3-style MoE whose router biases move every step)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml

from mindvl.trainer.checkpoint import latest_checkpoint
from mindvl.trainer.data.synth_shards import train_test_tokenizer, write_stage
from mindvl.trainer.loop import run_stage
from mindvl.trainer.model import MindVL
from mindvl.trainer.stage_config import load_stage

STEPS = 6


def _stage_yaml(d: Path, model: str = "tiny") -> Path:
    tok = train_test_tokenizer(d / "tok")
    write_stage(d / "stage", tok, n_samples=48, n_shards=2, long_tail=60)
    cfg = {
        "name": "resume",
        "data": {"manifest": str(d / "stage"), "streams": 2},
        "seq_len": 256,
        "tokens_per_step": 512,
        "steps": STEPS,
        "init": {"config": model},
        # MoE: router losses in the objective and bias updates that must resume exactly
        "moe": {"aux_loss_coef": 0.01, "z_loss_coef": 0.001, "bias_update_rate": 0.01},
        "optimizer": {"lr": 0.003},
        "schedule": {"warmup_steps": 2},
        "checkpoint_every": 2,
        "keep_checkpoints": 5,
        "threads": 1,
        "device": "cpu",
        "packing": {"buffer_size": 8, "max_wait": 4, "vit_patch_budget": 2048},
    }
    p = d / "stage.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _env() -> dict:
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # cache bytecode outside the venv: fast restarts
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "mindvl-test-pycache")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("model", ["tiny", "tiny_deepseek_v3"])
def test_sigkill_then_resume_continues_exactly(tmp_path, model):
    stage = _stage_yaml(tmp_path, model)
    cfg = load_stage(stage)
    reference = {r["step"]: r for r in run_stage(cfg, tmp_path / "ref")}

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mindvl.trainer.train_cli", str(stage), "--out", str(out)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 240
    while latest_checkpoint(out) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    ckpt = latest_checkpoint(out)
    assert ckpt is not None and not (out / "model").exists()  # killed mid-run
    resumed_from = json.loads((ckpt / "trainer.json").read_text())["step"]
    assert resumed_from < STEPS

    resumed = run_stage(cfg, out, resume=True)
    assert [r["step"] for r in resumed] == list(range(resumed_from + 1, STEPS + 1))
    for r in resumed:
        ref = reference[r["step"]]
        assert (r["loss"], r["grad_norm"], r["lr"]) == (ref["loss"], ref["grad_norm"], ref["lr"])
        assert r["tokens_seen"] == ref["tokens_seen"]
    logged = _rows(out / "metrics.jsonl")  # steps rerun after the kill are logged once
    assert [r["step"] for r in logged] == list(range(1, STEPS + 1))
    assert [r["loss"] for r in logged] == [reference[s]["loss"] for s in range(1, STEPS + 1)]
    final = MindVL.from_pretrained(out / "model").state_dict()
    ref_final = MindVL.from_pretrained(tmp_path / "ref" / "model").state_dict()
    assert final.keys() == ref_final.keys()
    assert all(torch.equal(final[k], ref_final[k]) for k in final)

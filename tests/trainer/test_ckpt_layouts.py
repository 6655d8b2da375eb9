"""Step checkpoints resumed under another layout continue the uninterrupted 1-process run
(fp32: steps 3-4 rel 1e-5, final weights atol 2e-5): TP=2 and PP=2 checkpoints resumed by
FSDP=2, a PP=2 x FSDP=2 checkpoint resumed by the same layout and by FSDP=2, and for an MoE
LLM (DeepSeek-V3: shared expert, aux-loss-free routing biases) an EP=2 checkpoint resumed
by FSDP=2 with ep 1 and a 1-process one (ep 1) by EP=2 (test_ckpt_sharded.py covers
FSDP=2 -> 1 process, DDP=2 and TP=2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dist_helpers import assert_resumes, spawn, tiny_stage

from mindvl.trainer.loop import run_stage
from mindvl.trainer.stage_config import StageConfig

DENSE = ("loss", "grad_norm")
MOE = ("loss", "ce_loss", "aux_loss", "z_loss", "grad_norm")


def _reference(tmp_path_factory, name: str, **fields):
    """A 4-step stage with checkpoints at steps 2 and 4, and its 1-process run."""
    cfg = tiny_stage(
        tmp_path_factory, name, streams=4, tokens_per_step=1024, steps=4,
        checkpoint_every=2, keep_checkpoints=3, **fields,
    )  # fmt: skip
    d = Path(cfg.data.manifest).parent
    return d, cfg, {r["step"]: r for r in run_stage(cfg, d / "ref")}


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    return _reference(tmp_path_factory, "relayout", optimizer={"lr": 0.003, "grad_clip": 0.5})


@pytest.fixture(scope="module")
def moe(tmp_path_factory):
    return _reference(
        tmp_path_factory, "relayout_moe", init={"config": "tiny_deepseek_v3"},
        optimizer={"lr": 0.003, "grad_clip": 0.5},
        moe={"aux_loss_coef": 0.05, "z_loss_coef": 0.01, "bias_update_rate": 0.01},
    )  # fmt: skip


def _layout(cfg: StageConfig, **parallel) -> StageConfig:
    return StageConfig.model_validate({**cfg.model_dump(), "parallel": parallel})


def _resume_step2(src: Path, dst: Path, cfg: StageConfig, world: int) -> list[dict]:
    """Copy run ``src`` without its step-4 checkpoint and model, resume it under ``cfg``."""
    shutil.copytree(src, dst)
    shutil.rmtree(dst / "checkpoints" / "step-00000004")
    shutil.rmtree(dst / "model")
    if world == 1:
        return run_stage(cfg, dst, resume=True)
    return spawn(cfg, dst, world, resume=True)[2:]


@pytest.mark.parametrize("saved", [{"tp": 2}, {"pp": 2}], ids=["tp2", "pp2"])
def test_tp2_and_pp2_checkpoints_resume_under_fsdp2(dense, saved):
    d, cfg, reference = dense
    name = "-".join(f"{k}{v}" for k, v in saved.items())
    rows = spawn(_layout(cfg, **saved), d / name, 2)
    assert_resumes(reference, rows, d / "ref", None, DENSE)  # the saving run itself
    resumed = _resume_step2(d / name, d / f"{name}-fsdp2", _layout(cfg, dp_shard=2), 2)
    assert_resumes(reference, resumed, d / "ref", d / f"{name}-fsdp2", DENSE)


@pytest.fixture(scope="module")
def pp2x2(dense):
    """The dense stage under PP=2 x FSDP=2 (4 ranks), checkpoints at steps 2 and 4."""
    d, cfg, reference = dense
    rows = spawn(_layout(cfg, pp=2, dp_shard=2), d / "pp2x2", 4)
    assert_resumes(reference, rows, d / "ref", None, DENSE)
    return d / "pp2x2"


def test_pp2_times_fsdp2_checkpoint_resumes_as_itself(dense, pp2x2):
    d, cfg, reference = dense
    resumed = _resume_step2(pp2x2, d / "pp2x2-again", _layout(cfg, pp=2, dp_shard=2), 4)
    assert_resumes(reference, resumed, d / "ref", d / "pp2x2-again", DENSE)


def test_pp2_times_fsdp2_checkpoint_resumes_as_fsdp2(dense, pp2x2):
    d, cfg, reference = dense
    resumed = _resume_step2(pp2x2, d / "pp2x2-fsdp2", _layout(cfg, dp_shard=2), 2)
    assert_resumes(reference, resumed, d / "ref", d / "pp2x2-fsdp2", DENSE)


def test_ep2_checkpoint_resumes_with_ep1(moe):
    d, cfg, reference = moe
    rows = spawn(_layout(cfg, ep=2), d / "ep2", 2)  # experts over ep, the rest FSDP2 over 2
    assert_resumes(reference, rows, d / "ref", None, MOE)
    resumed = _resume_step2(d / "ep2", d / "ep2-fsdp2", _layout(cfg, dp_shard=2), 2)
    assert_resumes(reference, resumed, d / "ref", d / "ep2-fsdp2", MOE)


def test_one_process_checkpoint_resumes_under_ep2(moe):
    d, cfg, reference = moe
    resumed = _resume_step2(d / "ref", d / "one-ep2", _layout(cfg, ep=2), 2)
    assert_resumes(reference, resumed, d / "ref", d / "one-ep2", MOE)

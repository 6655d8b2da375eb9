"""Sharded (DCP) step checkpoints: saved by 2 FSDP2 ranks, resumed by 1 process, by 2
DDP ranks and by TP=2 with the losses of an uninterrupted run; a SIGKILL during a save leaves the
previous checkpoint; exported to a sharded model dir; averaged from either form; a loader
state that cannot be re-split is refused."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from dist_helpers import spawn, start_blocked_save, tiny_stage

from mindvl.common.cli import cli
from mindvl.common.errors import UserError
from mindvl.trainer.checkpoint import latest_checkpoint
from mindvl.trainer.data.loader import PackedLoader
from mindvl.trainer.data.packing import PackBudget
from mindvl.trainer.data.stream import StageData, StreamSettings
from mindvl.trainer.loop import run_stage
from mindvl.trainer.model import MindVL
from mindvl.trainer.stage_config import StageConfig

TOL = {"rel": 1e-5, "abs": 1e-6}  # fp32; reduction order differs between layouts


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 4-step reference (1 process) and the same run on 2 FSDP2 ranks, checkpoints at 2, 4."""
    cfg = tiny_stage(tmp_path_factory, "dcp", steps=4, checkpoint_every=2, keep_checkpoints=3)
    d = Path(cfg.data.manifest).parent
    reference = {r["step"]: r for r in run_stage(cfg, d / "ref")}
    fsdp = cfg.model_copy(update={"distributed": "fsdp"})
    rows = spawn(fsdp, d / "fsdp", 2)
    return d, cfg, reference, rows


def _from_step2(src, dst):
    shutil.copytree(src, dst)
    shutil.rmtree(dst / "checkpoints" / "step-00000004")
    shutil.rmtree(dst / "model")


def test_fsdp2_checkpoint_resumes_as_one_process_ddp_and_tp2(trained):
    d, cfg, reference, rows = trained
    for r in rows:
        assert r["loss"] == pytest.approx(reference[r["step"]]["loss"], **TOL)
    step2 = d / "fsdp" / "checkpoints" / "step-00000002"
    shards = sorted(p.name for p in (step2 / "model-shards").iterdir())
    assert len(shards) == 2 and all(s.endswith(".safetensors") for s in shards)  # one per rank
    for f in step2.rglob("*"):
        assert not f.is_file() or not f.read_bytes().startswith(b"\x80"), f"{f} is a pickle"

    _from_step2(d / "fsdp", d / "one")
    one = run_stage(cfg, d / "one", resume=True)
    _from_step2(d / "fsdp", d / "ddp")
    ddp = spawn(cfg.model_copy(update={"distributed": "ddp"}), d / "ddp", 2, resume=True)
    _from_step2(d / "fsdp", d / "tp")
    tp_cfg = StageConfig.model_validate({**cfg.model_dump(), "parallel": {"tp": 2}})
    tp = spawn(tp_cfg, d / "tp", 2, resume=True)  # 2 ranks sharing one batch: one loader
    for resumed in (one, ddp[2:], tp[2:]):
        assert [r["step"] for r in resumed] == [3, 4]
        for r in resumed:
            ref = reference[r["step"]]
            assert r["loss"] == pytest.approx(ref["loss"], **TOL)
            assert r["grad_norm"] == pytest.approx(ref["grad_norm"], **TOL)
            assert r["tokens_seen"] == ref["tokens_seen"]


def test_export_sharded_and_average_either_form(trained):
    d = trained[0]
    final = MindVL.from_pretrained(d / "fsdp" / "model")
    assert (d / "fsdp" / "model" / "model.safetensors").is_file()  # small: one file
    step4 = d / "fsdp" / "checkpoints" / "step-00000004"
    out = d / "exported"
    res = CliRunner().invoke(
        cli, ["ckpt", "export", str(step4), "-o", str(out), "--max-shard-size", "100KB"]
    )
    assert res.exit_code == 0, res.output
    files = sorted(p.name for p in out.glob("*.safetensors"))
    assert len(files) > 1 and (out / "model.safetensors.index.json").is_file()
    assert all(f.startswith("model-000") for f in files)
    exported = MindVL.from_pretrained(out)
    assert exported.llm.lm_head.weight is exported.llm.get_input_embeddings().weight
    a, b = final.state_dict(), exported.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    step2 = d / "fsdp" / "checkpoints" / "step-00000002"
    avg = d / "avg"
    args = ["ckpt", "average", str(step2), str(out), "-o", str(avg), "--no-lineage-check"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    mean = MindVL.from_pretrained(avg).state_dict()
    res = CliRunner().invoke(cli, ["ckpt", "export", str(step2), "-o", str(d / "e2")])
    assert res.exit_code == 0, res.output
    s2 = MindVL.from_pretrained(d / "e2").state_dict()
    key = "llm.model.layers.0.mlp.up_proj.weight"
    assert torch.allclose(mean[key], (s2[key] + b[key]) / 2, atol=1e-7)
    with pytest.raises(UserError, match="sharded training checkpoint: make a model dir"):
        MindVL.from_pretrained(step2)
    res = CliRunner().invoke(cli, ["ckpt", "export", str(d / "nothing"), "-o", str(d / "x")])
    assert res.exit_code == 2 and "not a checkpoint directory" in res.output


def test_loader_state_resplit_or_one_line_refusal(trained):
    d = trained[0]
    data = StageData.open(d / "stage", verify=False)
    settings = StreamSettings(PackBudget(256, 2048), 8, 64, 0)
    two = [PackedLoader(data, settings, r, 2, 2) for r in range(2)]
    iters = [iter(ld) for ld in two]
    for it in iters:
        next(it)
    saved = [json.loads(json.dumps(ld.state_dict())) for ld in two]  # as on disk
    expected = [next(it).sample_keys for it in iters]
    one = PackedLoader(data, settings, 0, 1, 2)
    one.load_rank_states(saved)  # both streams, each where its rank stopped
    it = iter(one)
    assert [next(it).sample_keys, next(it).sample_keys] == expected
    with pytest.raises(UserError, match="same data.streams"):
        PackedLoader(data, settings, 0, 1, 4).load_rank_states(saved)
    mid = [dict(s, next=1) for s in saved]
    with pytest.raises(UserError, match="stopped inside a round"):
        PackedLoader(data, settings, 0, 1, 2).load_rank_states(mid)


def test_sigkill_during_a_save_resumes_from_the_previous_checkpoint(trained):
    d, cfg, reference, _ = trained
    out = d / "killed"
    fsdp = cfg.model_copy(update={"distributed": "fsdp"})
    ranks = start_blocked_save(fsdp, out, 2, 4).processes
    markers = [out / "checkpoints" / f"blocked-rank{r}" for r in range(2)]
    deadline = time.monotonic() + 180
    while not all(m.exists() for m in markers) and time.monotonic() < deadline:
        assert all(p.is_alive() for p in ranks), "a rank ended before its blocked save"
        time.sleep(0.05)
    for p in ranks:  # both ranks, mid-save
        os.kill(p.pid, signal.SIGKILL)
        p.join()
    assert all(m.exists() for m in markers)
    assert (out / "checkpoints" / "step-00000004.tmp" / "model-shards").is_dir()
    assert latest_checkpoint(out).name == "step-00000002"
    assert not (out / "model").exists()

    resumed = spawn(fsdp, out, 2, resume=True)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]  # metrics.jsonl: 1-2 kept, 3-4 new
    for r in resumed:
        assert r["loss"] == pytest.approx(reference[r["step"]]["loss"], **TOL)
    assert not (out / "checkpoints" / "step-00000004.tmp").exists()
    assert latest_checkpoint(out).name == "step-00000004"
    assert (out / "model" / "model.safetensors").is_file()


def test_background_saves_match_blocking_ones(trained):
    d, cfg, reference, _ = trained
    out = d / "async"
    rows = spawn(cfg.model_copy(update={"distributed": "fsdp", "checkpoint_async": True}), out, 2)
    assert [r["loss"] for r in rows] == pytest.approx(
        [reference[s]["loss"] for s in (1, 2, 3, 4)], **TOL
    )
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == ["step-00000002", "step-00000004"]  # committed, no .tmp left
    blocking = MindVL.from_pretrained(d / "fsdp" / "model").state_dict()
    background = MindVL.from_pretrained(out / "model").state_dict()
    assert all(torch.equal(blocking[k], background[k]) for k in blocking)
    _from_step2(out, d / "async-one")
    resumed = run_stage(cfg, d / "async-one", resume=True)
    for r in resumed:
        assert r["loss"] == pytest.approx(reference[r["step"]]["loss"], **TOL)

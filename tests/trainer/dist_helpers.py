"""Run a stage on N gloo processes on this machine and compare it with one process
(distributed trainer tests)."""

from __future__ import annotations

import gc
import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from mindvl.trainer.data.synth_shards import train_test_tokenizer, write_stage
from mindvl.trainer.loop import run_stage
from mindvl.trainer.model import MindVL
from mindvl.trainer.stage_config import StageConfig

# native threads Ray's driver keeps after ray.shutdown() (gRPC, the GCS client)
RAY_THREADS = ("grpc", "event_engine", "gcs_client", "worker.io")


def assert_fork_safe() -> None:
    """Fail if this process ran Ray: ranks forked from it could abort at random in glibc's
    heap checks (tests/conftest.py runs the tests that start Ray after all others)."""
    tasks = Path("/proc/self/task")
    names = [(t / "comm").read_text().strip() for t in tasks.iterdir()] if tasks.is_dir() else []
    ray = sorted({n for n in names if n.startswith(RAY_THREADS)})
    assert not ray, (
        f"forking ranks from a process that ran Ray (threads {ray}); see tests/conftest.py"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, cfg_json: str, out: str, port: int, resume: bool) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    run_stage(StageConfig.model_validate_json(cfg_json), out, resume=resume)


def forget_process_groups() -> None:
    """What torch keeps of earlier in-process meshes after destroy_process_group: DTensor's
    sharding-propagation cache and the DeviceMesh registry, both keyed by mesh equality. A
    forked rank's 1-rank submesh ([0], same dim name) would otherwise get back a cached spec
    holding the dead mesh and wait forever on its group."""
    from torch.distributed import device_mesh
    from torch.distributed.tensor import DTensor

    if not torch.distributed.is_initialized():
        DTensor._op_dispatcher.sharding_propagator.propagate_op_sharding.cache.cache_clear()
        device_mesh._mesh_resources.__init__()


def spawn(cfg: StageConfig, out, world: int, resume: bool = False) -> list[dict]:
    """Train ``cfg`` on ``world`` processes into ``out``; the metrics rows of rank 0."""
    # garbage of earlier tests (a destroyed gloo group) must die here, not in a forked rank
    # whose GC would wait on the group's threads, which a fork does not copy
    gc.collect()
    forget_process_groups()
    assert_fork_safe()
    mp.start_processes(
        _rank_main,
        args=(world, cfg.model_dump_json(), str(out), free_port(), resume),
        nprocs=world,
        # fork is fast; where a GPU is visible, a forked child cannot run backward after
        # the parent did (autograd's device threads), so spawn there
        start_method="spawn" if torch.cuda.is_available() else "fork",
    )
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(single, rows, one_dir, other_dir, keys, trains_llm=True) -> None:
    """A 3-step run (``rows``, saved under ``other_dir``) equals the 1-process one: token
    counts, every MoE layer's expert load, the metric ``keys`` (fp32: rel 1e-5) and every
    final weight (atol 2e-5, rtol 1e-4); ``trains_llm``: the loss also moved."""
    assert [r["step"] for r in rows] == [1, 2, 3]
    for a, b in zip(single, rows, strict=True):
        assert b["loss_tokens"] == a["loss_tokens"] and b["vit_tokens"] == a["vit_tokens"]
        for key in keys:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
        for key in (k for k in a if k.startswith("experts_l")):
            assert b[key] == pytest.approx(a[key], abs=1e-6), key
    if trains_llm:
        assert single[0]["loss"] != pytest.approx(single[-1]["loss"], abs=1e-3)
    assert_same_weights(one_dir, other_dir)


def assert_same_weights(one_dir, other_dir) -> None:
    """The final model dirs of two runs hold the same weights (atol 2e-5, rtol 1e-4)."""
    final = MindVL.from_pretrained(other_dir / "model").state_dict()
    ref = MindVL.from_pretrained(one_dir / "model").state_dict()
    assert final.keys() == ref.keys()
    for k in final:  # full tensors gathered back from the shards and stages
        torch.testing.assert_close(final[k], ref[k], atol=2e-5, rtol=1e-4, msg=k)


def assert_resumes(reference: dict, rows, one_dir, other_dir, keys) -> None:
    """``rows`` (a run, or the steps after a resume) are the uninterrupted run's steps
    (``reference``: step -> row): token counts, the metric ``keys`` (fp32: rel 1e-5) and,
    with ``other_dir``, the final weights of the two runs' model dirs."""
    assert [r["step"] for r in rows] == sorted(reference)[-len(rows) :]
    for b in rows:
        a = reference[b["step"]]
        assert b["loss_tokens"] == a["loss_tokens"] and b["tokens_seen"] == a["tokens_seen"]
        for key in keys:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (b["step"], key)
    if other_dir is not None:
        assert_same_weights(one_dir, other_dir)


def log_materialisations(monkeypatch, log: Path) -> None:
    """From now on every distributed rank (forked ranks inherit the patch) appends a line
    to ``log`` for each ``Module.to_empty``, the meta path giving a model storage: its
    rank, the parameter elements it gives storage to and those of the full shapes."""
    real = torch.nn.Module.to_empty

    def to_empty(self, *args, **kwargs):
        if torch.distributed.is_initialized():
            params = list(self.parameters())
            local = sum((p.to_local() if hasattr(p, "to_local") else p).numel() for p in params)
            full = sum(p.numel() for p in params)
            with open(log, "a") as f:
                f.write(f"{torch.distributed.get_rank()} {local} {full}\n")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to_empty", to_empty)


def assert_only_shards_materialised(log: Path, world: int) -> None:
    """Every rank took the meta path (gave its model storage) and never gave storage to a
    whole model: each time, fewer parameter elements than the full shapes hold."""
    rows = [tuple(map(int, line.split())) for line in log.read_text().splitlines()]
    assert {rank for rank, _, _ in rows} == set(range(world))
    for rank, local, full in rows:
        assert local < full, f"rank {rank} gave storage to {local} of {full} parameter elements"


def tiny_stage_fields(manifest, name: str, **fields) -> dict:
    """The fields of a 3-step fp32 CPU stage of the tiny model on ``manifest``; ``fields``
    override them (``streams`` goes into ``data``)."""
    base = {
        "name": name,
        "data": {"manifest": str(manifest), "streams": fields.pop("streams", 2)},
        "seq_len": 256,
        "tokens_per_step": 512,
        "steps": 3,
        "init": {"config": "tiny"},
        "optimizer": {"lr": 0.003},
        "threads": 1,
        "device": "cpu",
        "packing": {"buffer_size": 8, "vit_patch_budget": 2048},
    }
    return {**base, **fields}


def tiny_stage(tmp_path_factory, name: str, n_samples=48, n_shards=4, **fields) -> StageConfig:
    """A :func:`tiny_stage_fields` stage on tiny synthetic shards written for it."""
    d = tmp_path_factory.mktemp(name)
    tok = train_test_tokenizer(d / "tok")
    write_stage(d / "stage", tok, n_samples=n_samples, n_shards=n_shards, long_tail=60)
    return StageConfig.model_validate(tiny_stage_fields(d / "stage", name, **fields))


def _blocked_rank_main(rank, world, cfg_json, out, port, step) -> None:
    """A rank whose checkpoint save of ``step`` stops for good just before its RNG file
    (every shard and the trainer state already written to ``step-N.tmp``)."""
    import time

    import mindvl.trainer.checkpoint as ckpt

    real = ckpt.save_state

    def save_state(obj, folder: Path, stem: str) -> None:
        if folder.name == f"step-{step:08d}.tmp" and stem.startswith("rng"):
            (folder.parent / f"blocked-rank{rank}").touch()
            time.sleep(3600)
        real(obj, folder, stem)

    ckpt.save_state = save_state
    _rank_main(rank, world, cfg_json, out, port, False)


def start_blocked_save(cfg: StageConfig, out, world: int, step: int):
    """Start ``world`` forked ranks that hang in the save of ``step`` (the test SIGKILLs
    them there); returns torch's process context (``.processes``)."""
    gc.collect()  # see spawn
    assert_fork_safe()
    return mp.start_processes(
        _blocked_rank_main,
        args=(world, cfg.model_dump_json(), str(out), free_port(), step),
        nprocs=world,
        start_method="fork",
        join=False,
    )

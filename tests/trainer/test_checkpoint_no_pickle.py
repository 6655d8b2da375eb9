"""Training checkpoints hold no pickle; a planted pickle is refused, never run."""

from __future__ import annotations

import pathlib
import pickle
import random
import shutil

import numpy as np
import pytest
import torch

from mindvl.common.errors import UserError
from mindvl.trainer.checkpoint import load_training_state, save_checkpoint


class _Payload:
    """Unpickling this creates ``path``: proof that code from the file ran."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def _parts():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 3))
    return model, opt, sched


def _save(tmp_path: pathlib.Path) -> pathlib.Path:
    model, opt, sched = _parts()
    for _ in range(2):
        model(torch.randn(5, 4)).square().mean().backward()
        opt.step()
        sched.step()
        opt.zero_grad()
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    return save_checkpoint(
        tmp_path, 2, model, opt, sched, {"pos": [1, 2]},
        {"step": 2, "tokens_seen": 10}, rank=0, world=1, keep=2,
    )  # fmt: skip


def test_roundtrip_restores_optimizer_scheduler_rng_without_pickle(tmp_path):
    ckpt = _save(tmp_path)
    for f in ckpt.rglob("*"):  # the DCP shard folders too
        if f.is_file():
            assert not f.read_bytes().startswith(b"\x80"), f"{f.name} is a pickle"
    expected = (random.random(), float(np.random.rand()), torch.rand(1).item())
    saved_model, saved_opt, _ = _parts()  # the weights before training

    model, opt, sched = _parts()
    trainer, loaders = load_training_state(ckpt, model, opt, sched, rank=0, world=1)
    assert trainer["step"] == 2 and loaders == [{"pos": [1, 2]}]
    assert not torch.equal(model[0].weight, saved_model[0].weight)  # trained weights back
    assert sched.last_epoch == 2 and sched.get_last_lr() == [0.01]
    state = opt.state_dict()
    assert list(state["param_groups"][0]["betas"]) == [0.9, 0.95]
    assert int(state["state"][0]["step"]) == 2
    assert not torch.equal(state["state"][0]["exp_avg"], torch.zeros(3, 4))
    assert saved_opt.state_dict()["state"] == {}
    assert (random.random(), float(np.random.rand()), torch.rand(1).item()) == expected


def test_planted_pickle_is_refused_and_never_runs(tmp_path):
    ckpt = _save(tmp_path)
    marker = tmp_path / "pwned"
    evil = pickle.dumps(_Payload(marker))
    model, opt, sched = _parts()

    # a pickle in place of the tensor file
    (ckpt / "optimizer.safetensors").write_bytes(evil)
    with pytest.raises(UserError, match="optimizer.safetensors is not a safetensors file"):
        load_training_state(ckpt, model, opt, sched, rank=0, world=1)

    # DCP's pickled .metadata is never written nor read; a planted one is ignored
    (ckpt / "optimizer.safetensors").unlink()
    model, opt, sched = _parts()
    _save(tmp_path / "again")
    ckpt = tmp_path / "again" / "checkpoints" / "step-00000002"
    (ckpt / "model-shards" / ".metadata").write_bytes(evil)
    load_training_state(ckpt, model, opt, sched, rank=0, world=1)

    # a pickle in place of a weight shard
    shard = next((ckpt / "model-shards").glob("*.safetensors"))
    shard.write_bytes(evil)
    with pytest.raises(UserError, match="model-shards cannot be read") as err:
        load_training_state(ckpt, model, opt, sched, rank=0, world=1)
    assert "\n" not in err.value.format_message()

    # an older layout (no sharded model): a one-line refusal
    shutil.rmtree(ckpt / "model-shards")
    with pytest.raises(UserError, match="older layout") as err:
        load_training_state(ckpt, model, opt, sched, rank=0, world=1)
    assert "\n" not in err.value.format_message()
    assert not marker.exists()


def test_unsaveable_object_is_refused_at_save(tmp_path):
    from mindvl.trainer.state_files import save_state

    with pytest.raises(TypeError, match=r"opt\.hook: _Payload cannot be saved without pickle"):
        save_state({"hook": _Payload(tmp_path / "x")}, tmp_path, "opt")


def test_state_files_keep_python_types(tmp_path):
    from mindvl.trainer.state_files import load_state, save_state

    obj = {
        "t": (1, 2.5, None, "x"),
        3: np.arange(5, dtype=np.uint32),
        "nested": [{"__tensor__": torch.arange(3)}, True],
    }
    save_state(obj, tmp_path, "s")
    back = load_state(tmp_path, "s")
    assert back["t"] == (1, 2.5, None, "x")
    assert back[3].dtype == np.uint32 and back[3].tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(back["nested"][0]["__tensor__"], torch.arange(3))
    assert back["nested"][1] is True

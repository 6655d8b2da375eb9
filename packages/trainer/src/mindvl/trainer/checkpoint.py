"""Training checkpoints: sharded, resharding, atomic, and free of pickle.

``OUT/checkpoints/step-00000010/`` holds

* ``model-shards/``, ``optimizer-shards/`` — ``torch.distributed.checkpoint`` (DCP) saves of
  the model and the optimizer state, written by every rank in parallel, each its own shards
  (FSDP2 and expert slices as DTensors; a replicated tensor once). DCP's Hugging Face
  storage format is used: safetensors files carrying their pieces' offsets, no pickled
  ``.metadata``. Loading reads whatever pieces the new layout needs, so a checkpoint saved
  under FSDP=2 resumes under FSDP=1, DDP or one process;
* ``optimizer.json`` (+ ``.safetensors``) — the optimizer's param groups (lr, betas, ...);
* ``config.json``, ``inference.json``, tokenizer — what ``mindvl ckpt export`` needs to turn
  the checkpoint into a model dir (:mod:`mindvl.trainer.export`);
* ``scheduler.*``, ``trainer.json`` (step, tokens seen, config digest, world size);
* ``rng-rank{r}.*`` and ``loader-rank{r}.json`` — each data-parallel rank's RNG and loader
  state. A resume under another world size re-splits the loader's logical streams
  (:meth:`~mindvl.trainer.data.loader.PackedLoader.load_rank_states`); rank ``r`` takes the
  RNG of saved rank ``r mod saved world`` (bitwise continuation needs the same world).

No file is a pickle (``state_files.py``, DCP's safetensors storage): resuming a run folder
copied from elsewhere cannot run code.

Every rank writes into ``step-N.tmp/``; after a barrier rank 0 renames it to ``step-N``, so
a directory without ``.tmp`` is always complete: a run killed mid-save resumes from the
previous checkpoint. With ``checkpoint_async`` the shards are staged in CPU memory and
written by ``dcp.async_save`` in a background thread (on a gloo group of its own); the
commit waits for them and happens at the next checkpoint or at the end of the stage.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mindvl.common.errors import UserError
from mindvl.trainer.state_files import load_state, save_state

CKPT_DIR = "checkpoints"
MODEL_SHARDS = "model-shards"
OPTIM_SHARDS = "optimizer-shards"


def step_dir(out: Path, step: int) -> Path:
    return out / CKPT_DIR / f"step-{step:08d}"


def is_step_checkpoint(path: Path) -> bool:
    return (Path(path) / MODEL_SHARDS).is_dir()


def latest_checkpoint(out: Path) -> Path | None:
    root = out / CKPT_DIR
    if not root.is_dir():
        return None
    done = sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
    return done[-1] if done else None


def rng_state() -> dict:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def _quiet_dcp():
    """Hide DCP's warnings that say nothing here: one process without a process group is
    the intended single-process case; its writer's own use of ``TypedStorage``."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        yield


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def _sharded_state(model, optimizer) -> tuple[dict, dict, list]:
    """(model state, optimizer per-parameter state, param groups) as DCP sees them: this
    rank's shards, expert weights as views of the whole tensors. Tensors share storage with
    the model and optimizer, so a DCP load into them restores in place."""
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    msd = get_model_state_dict(model)
    osd = get_optimizer_state_dict(model, optimizer)
    return msd, osd, osd["param_groups"]


def _views(model, msd: dict, osd: dict) -> tuple[dict, dict]:
    """What DCP saves and loads, under checkpoint names
    (:mod:`~mindvl.trainer.device.state_names`: no wrapper or stage prefixes, a tied
    embedding once), expert weights whole
    (:func:`~mindvl.trainer.device.expert_parallel.expert_checkpoint_view`)."""
    from mindvl.trainer.device.expert_parallel import expert_checkpoint_view
    from mindvl.trainer.device.state_names import saved_name

    name = saved_name(model)

    def renamed(state: dict) -> dict:
        out: dict = {}
        for k, v in state.items():  # tied names in one process: one tensor, kept once
            out.setdefault(name(k), v)
        return out

    optim = expert_checkpoint_view(model, {"state": osd["state"]}, optimizer=True)
    return renamed(expert_checkpoint_view(model, msd)), {"state": renamed(optim["state"])}


class PendingCheckpoint:
    """A checkpoint whose shards may still be being written (``background``);
    :meth:`commit` waits for them, then commits it as a blocking save does."""

    def __init__(self, futures: list, tmp: Path, final: Path, rank: int, world: int, keep: int):
        self.futures, self.tmp, self.final = futures, tmp, final
        self.rank, self.world, self.keep = rank, world, keep

    def commit(self) -> Path:
        for f in self.futures:
            f.result()
        _barrier(self.world)
        if self.rank == 0:
            self.tmp.rename(self.final)  # the commit: a step-N without .tmp is complete
            root = self.final.parent
            done = sorted(p for p in root.glob("step-*") if not p.name.endswith(".tmp"))
            for old in done[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        _barrier(self.world)
        return self.final


def start_checkpoint(
    out: Path,
    step: int,
    model,
    optimizer,
    scheduler,
    loader_state: dict,
    trainer_state: dict,
    rank: int,
    world: int,
    keep: int,
    write_meta: Callable[[Path], None] = lambda path: None,
    background_group=None,
) -> PendingCheckpoint:
    """Write checkpoint ``step`` into ``step-N.tmp``; ``write_meta(path)`` (rank 0) adds the
    model's config, tokenizer and inference rule. With ``background_group`` (two gloo
    process groups, or ``True`` for one process) the shards are copied to CPU memory now and
    written by ``dcp.async_save`` while training goes on: the model and the optimizer each
    in a thread of their own, each on its own group (concurrent collectives on one group
    would interleave)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter

    from mindvl.trainer.device.state_names import whole_groups

    rng = rng_state()  # before DCP, which draws from torch's generator
    final = step_dir(out, step)
    tmp = final.with_name(final.name + ".tmp")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier(world)
    msd, osd, groups = _sharded_state(model, optimizer)  # collective under FSDP
    groups = whole_groups(model, groups)  # collective under pipeline parallelism
    model_view, optim_view = _views(model, msd, osd)
    futures = []
    for i, (state, name) in enumerate(((model_view, MODEL_SHARDS), (optim_view, OPTIM_SHARDS))):
        writer = HuggingFaceStorageWriter(str(tmp / name), save_distributed=True)
        with _quiet_dcp():
            if background_group is None:
                dcp.save(state, storage_writer=writer)
            else:
                group = None if background_group is True else background_group[i]
                futures.append(dcp.async_save(state, storage_writer=writer, process_group=group))
    if rank == 0:
        write_meta(tmp)
        save_state({"param_groups": groups}, tmp, "optimizer")
        save_state(scheduler.state_dict(), tmp, "scheduler")
        text = json.dumps({**trainer_state, "world": world}, indent=2, sort_keys=True)
        (tmp / "trainer.json").write_text(text)
    save_state(rng, tmp, f"rng-rank{rank}")
    (tmp / f"loader-rank{rank}.json").write_text(json.dumps(loader_state))
    return PendingCheckpoint(futures, tmp, final, rank, world, keep)


def save_checkpoint(*args, **kwargs) -> Path:
    """:func:`start_checkpoint` (blocking) and commit it."""
    return start_checkpoint(*args, **kwargs).commit()


def check_layout_version(path: Path) -> None:
    if not is_step_checkpoint(path):
        raise UserError(
            f"checkpoint {path} has an older layout (no {MODEL_SHARDS}/), which this mindvl "
            "does not resume: resume it with the mindvl that wrote it, or start a new run "
            f"from its weights (init.checkpoint: {path}/model)"
        )


def load_training_state(
    path: Path, model, optimizer, scheduler, rank: int, world: int
) -> tuple[dict, list[dict]]:
    """Restore model, optimizer, scheduler and RNG from a step checkpoint into this layout;
    return (trainer state, every saved data-parallel rank's loader state)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from torch.distributed.checkpoint.api import CheckpointException
    from torch.distributed.checkpoint.state_dict import (
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    from mindvl.trainer.device.state_names import local_groups, whole_groups
    from mindvl.trainer.optimizer import check_saved_groups

    check_layout_version(path)
    trainer = json.loads((path / "trainer.json").read_text())
    msd, osd, groups = _sharded_state(model, optimizer)
    saved = load_state(path, "optimizer")["param_groups"]
    check_saved_groups(saved, whole_groups(model, groups), str(path))
    model_view, optim_view = _views(model, msd, osd)
    for state, name in ((model_view, MODEL_SHARDS), (optim_view, OPTIM_SHARDS)):
        try:
            with _quiet_dcp():
                dcp.load(state, storage_reader=HuggingFaceStorageReader(str(path / name)))
        except CheckpointException:  # a BaseException: each rank's error, wrapped
            raise UserError(
                f"checkpoint {path}: {name} cannot be read (a shard is missing, truncated or"
                " not safetensors)"
            ) from None
    set_model_state_dict(model, msd)
    restored = {"state": osd["state"], "param_groups": local_groups(saved, groups)}
    set_optimizer_state_dict(model, optimizer, restored)
    scheduler.load_state_dict(load_state(path, "scheduler"))
    saved_world = int(trainer.get("world", world))
    set_rng_state(load_state(path, f"rng-rank{rank % saved_world}"))
    # one loader per data-parallel rank: the first global rank holding it saved it
    first: dict[int, int] = {}
    for r, d in enumerate(trainer.get("dp_ranks", range(saved_world))):
        first.setdefault(d, r)
    loaders = [
        json.loads((path / f"loader-rank{first[d]}.json").read_text()) for d in sorted(first)
    ]
    return trainer, loaders

"""Training checkpoints: everything needed to continue a run bit for bit.

``OUT/checkpoints/step-00000010/`` holds

* ``model/`` — the model's own ``save_pretrained`` (config.json + model.safetensors),
* ``optimizer.safetensors`` + ``optimizer.json`` — the full (unsharded) optimizer state
  keyed by parameter name,
* ``scheduler.json`` (+ an empty ``scheduler.safetensors``) and ``trainer.json`` (step,
  tokens seen, config digest),
* ``rng-rank{r}.safetensors`` + ``rng-rank{r}.json`` — each rank's RNG states (python,
  numpy, torch, accelerator) and ``loader-rank{r}.json`` — its loader state (stream
  positions + packer buffer addresses).

No file is a pickle (``state_files.py``): resuming a run folder copied from elsewhere
cannot run code. A checkpoint of the older pickle layout (``optimizer.pt``) is refused
with a one-line error.

Every rank writes into ``step-N.tmp/``; after a barrier rank 0 renames it to ``step-N``,
so a directory without ``.tmp`` is always complete: a run killed mid-save resumes from
the previous checkpoint. Optimizer state goes through ``torch.distributed.checkpoint``'s
full-state-dict helpers, which work the same for a plain module, DDP and FSDP2.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from mindvl.common.errors import UserError
from mindvl.trainer.state_files import load_state, save_state

CKPT_DIR = "checkpoints"


def step_dir(out: Path, step: int) -> Path:
    return out / CKPT_DIR / f"step-{step:08d}"


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


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def _full_optimizer_state(model, optimizer) -> dict:
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    from mindvl.trainer.device.expert_parallel import full_state_options, gather_expert_state
    from mindvl.trainer.device.pipeline_state import gather_full_state, is_stage

    if is_stage(model):  # pipeline parallelism: every stage's part, on rank 0
        return gather_full_state(model, optimizer)
    state = get_optimizer_state_dict(model, optimizer, options=full_state_options(model))
    return gather_expert_state(model, state, optimizer=True)  # expert parallelism: join


def save_checkpoint(
    out: Path,
    step: int,
    model,
    save_model,
    optimizer,
    scheduler,
    loader_state: dict,
    trainer_state: dict,
    rank: int,
    world: int,
    keep: int,
) -> Path:
    """Write checkpoint ``step`` atomically; ``save_model(path)`` writes the weights (rank 0)."""
    final = step_dir(out, step)
    tmp = final.with_name(final.name + ".tmp")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier(world)
    optim = _full_optimizer_state(model, optimizer)  # collective under FSDP: every rank calls
    save_model(tmp / "model")  # collective too; rank 0 writes
    if rank == 0:
        save_state(optim, tmp, "optimizer")
        save_state(scheduler.state_dict(), tmp, "scheduler")
        (tmp / "trainer.json").write_text(json.dumps(trainer_state, indent=2, sort_keys=True))
    save_state(rng_state(), tmp, f"rng-rank{rank}")
    (tmp / f"loader-rank{rank}.json").write_text(json.dumps(loader_state))
    _barrier(world)
    if rank == 0:
        tmp.rename(final)
        done = sorted(p for p in final.parent.glob("step-*") if not p.name.endswith(".tmp"))
        for old in done[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    _barrier(world)
    return final


def load_training_state(path: Path, model, optimizer, scheduler, rank: int) -> tuple[dict, dict]:
    """Restore optimizer, scheduler and this rank's RNG; return (trainer state, loader state).

    The weights are loaded earlier, before the model is wrapped (``path / 'model'``).
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    from mindvl.trainer.device.expert_parallel import local_expert_state
    from mindvl.trainer.device.pipeline_state import is_stage, stage_optimizer_state
    from mindvl.trainer.optimizer import check_saved_groups

    if (path / "optimizer.pt").exists() and not (path / "optimizer.json").exists():
        raise UserError(
            f"checkpoint {path} has the old pickle layout (optimizer.pt), which this mindvl "
            "does not load: resume it with the mindvl that wrote it, or start a new run "
            f"from its weights (init.checkpoint: {path}/model)"
        )
    optim = load_state(path, "optimizer")
    optim = local_expert_state(model, optim, optimizer=True)  # expert parallelism: own slice
    if is_stage(model):  # pipeline parallelism: this stage's parameters
        optim = stage_optimizer_state(model, optim)
    check_saved_groups(optim["param_groups"], optimizer, str(path))
    set_optimizer_state_dict(
        model, optimizer, optim, options=StateDictOptions(full_state_dict=True)
    )
    scheduler.load_state_dict(load_state(path, "scheduler"))
    set_rng_state(load_state(path, f"rng-rank{rank}"))
    trainer = json.loads((path / "trainer.json").read_text())
    loader = json.loads((path / f"loader-rank{rank}.json").read_text())
    return trainer, loader

"""AdamW with per-part learning rates, and the warmup+cosine schedule over all its groups.

Each trainable part (``vision``, ``projector``, ``llm``) gets two parameter groups: matrices
with ``weight_decay`` and vectors (norms, biases) without, both at the part's learning rate
(``optimizer.lr_<part>``, or ``optimizer.lr`` where unset: ms-swift's ``vit_lr`` /
``aligner_lr``). The schedule is one multiplier applied to every group's own rate, so the
ratios between parts hold through warmup and decay.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mindvl.common.errors import UserError
from mindvl.trainer.model.mindvl import PARTS
from mindvl.trainer.stage_config import OptimizerSpec, ScheduleSpec


def part_lr(spec: OptimizerSpec, part: str) -> float:
    """The peak learning rate of ``part``: its own ``lr_<part>`` or the shared ``lr``."""
    own = getattr(spec, f"lr_{part}")
    return spec.lr if own is None else own


def group_order(group: dict) -> tuple[int, int]:
    """Where a (part, decay) group sits: parts in :data:`PARTS` order, decay first."""
    part = group.get("part")
    return (PARTS.index(part) if part in PARTS else len(PARTS), 0 if group.get("decay") else 1)


def _part_modules(model: nn.Module, part: str) -> list[nn.Module]:
    """``part`` of a MindVL, a DDP wrapper around one, or this rank's pipeline stage(s)
    (which may lack the part: the vision tower lives on the first stage only)."""
    core = getattr(model, "module", model)
    holders = list(core.stages) if hasattr(core, "stages") else [core]
    return [m for h in holders if (m := getattr(h, part, None)) is not None]


def param_groups(model: nn.Module, spec: OptimizerSpec) -> list[dict]:
    """AdamW groups of the trainable parameters: (part, decay/no-decay), empty ones left out.

    ``model`` is a MindVL (FSDP2-sharded or not), a DDP wrapper around one or a pipeline
    stage; each group carries ``part`` and ``decay`` keys so its rate can be logged per part.
    A pipeline stage with nothing to train gets one empty group (AdamW needs a group).
    """
    seen: set[int] = set()
    groups = []
    for part in PARTS:
        params = []
        for module in _part_modules(model, part):
            for p in module.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        lr = part_lr(spec, part)
        for decay in (True, False):
            chosen = [p for p in params if (p.ndim >= 2) == decay]
            if chosen:
                wd = spec.weight_decay if decay else 0.0
                groups.append(
                    {"params": chosen, "lr": lr, "weight_decay": wd, "part": part, "decay": decay}
                )
    return groups or [{"params": [], "lr": spec.lr, "part": None, "decay": None}]


def check_saved_groups(saved: list[dict], groups: list[dict], where: str) -> None:
    """A saved optimizer state must have this run's ``groups`` (same parts, same split; under
    pipeline parallelism the union of the stages'):
    checkpoints of another layout (one written before per-part groups, or under other
    ``trainable`` parts) are refused in one line instead of failing inside torch."""

    def layout(groups):
        return [(g.get("part"), g.get("decay")) for g in groups]

    if layout(saved) != layout(groups):
        raise UserError(
            f"{where}: its optimizer state has parameter groups {layout(saved)}, this stage builds"
            f" {layout(groups)} (part, decay): resume with the trainable parts it"
            f" was saved with, or start a new run from its weights (init.checkpoint: {where}/model)"
        )


def make_optimizer(model: nn.Module, spec: OptimizerSpec) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, spec), lr=spec.lr, betas=spec.betas, eps=spec.eps)


def lr_lambda(schedule: ScheduleSpec, total: int):
    """Linear warmup to the peak, then cosine to ``peak * min_lr_ratio`` at the last step:
    the multiplier of every group's own peak rate."""
    warm, floor = schedule.warmup_steps, schedule.min_lr_ratio

    def f(step: int) -> float:  # step = optimizer steps taken so far
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total - warm))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def current_lrs(optimizer: torch.optim.Optimizer, spec: OptimizerSpec) -> dict:
    """Metrics fields for the coming step: ``lr`` (the shared rate ``optimizer.lr`` under the
    schedule) and ``lr_<part>`` per trainable part (read after the scheduler is attached)."""
    first = optimizer.param_groups[0]
    row = {"lr": spec.lr * first["lr"] / first["initial_lr"]}
    for group in optimizer.param_groups:
        if group["part"] is not None:
            row[f"lr_{group['part']}"] = group["lr"]
    return row

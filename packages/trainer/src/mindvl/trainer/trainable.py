"""Which parameters train: freeze by part (vision / projector / llm) and report the split."""

from __future__ import annotations

from torch import nn

PARTS = ("vision", "projector", "llm")


def set_trainable(model: nn.Module, parts: list[str]) -> None:
    """Train the named parts (or ``all``); freeze the rest."""
    chosen = set(PARTS) if "all" in parts else set(parts)
    for part in PARTS:
        for p in getattr(model, part).parameters():
            p.requires_grad_(part in chosen)


def parameter_table(model: nn.Module) -> str:
    """Trainable vs frozen parameter counts per part, printed at the start of a run."""
    lines = [f"{'module':<10} {'trainable':>12} {'frozen':>12}"]
    total_t = total_f = 0
    for part in PARTS:
        params = list(getattr(model, part).parameters())
        t = sum(p.numel() for p in params if p.requires_grad)
        f = sum(p.numel() for p in params if not p.requires_grad)
        total_t, total_f = total_t + t, total_f + f
        lines.append(f"{part:<10} {t:>12,} {f:>12,}")
    lines.append(f"{'total':<10} {total_t:>12,} {total_f:>12,}")
    return "\n".join(lines)


def check_optimizer_covers(model: nn.Module, optimizer) -> None:
    """The optimizer must hold exactly the trainable parameters: no frozen one, none missing."""
    in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    missing = sorted(names[i] for i in trainable - in_opt)
    extra = sorted(names.get(i, "?") for i in in_opt - trainable)
    if missing or extra:
        raise RuntimeError(
            f"optimizer/trainable mismatch: missing {missing[:5]} ({len(missing)}), "
            f"frozen or foreign {extra[:5]} ({len(extra)})"
        )
    if not trainable:
        raise RuntimeError("no trainable parameters: check the stage's `trainable` list")

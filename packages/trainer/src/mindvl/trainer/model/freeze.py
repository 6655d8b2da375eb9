"""Which parts train in a stage (``vision``, ``projector``, ``llm``), and a report of it."""

from __future__ import annotations

from dataclasses import dataclass

from mindvl.trainer.model.mindvl import PARTS


def set_trainable(model, modules: list[str]) -> None:
    """Unfreeze exactly the named parts and freeze the rest (call before wrapping/sharding)."""
    unknown = sorted(set(modules) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown model parts {unknown} (choose from {', '.join(PARTS)})")
    for part in PARTS:
        getattr(model, part).requires_grad_(part in modules)


@dataclass(frozen=True)
class PartReport:
    part: str
    trainable: int
    frozen: int


def parameter_report(model) -> list[PartReport]:
    """Trainable and frozen parameter counts per part (tied weights counted once)."""
    seen: set[int] = set()
    rows = []
    for part in PARTS:
        trainable = frozen = 0
        for p in getattr(model, part).parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            if p.requires_grad:
                trainable += p.numel()
            else:
                frozen += p.numel()
        rows.append(PartReport(part, trainable, frozen))
    return rows


def format_report(rows: list[PartReport]) -> str:
    """A small table the loop prints at the start of a stage."""
    lines = [f"{'part':<10} {'trainable':>12} {'frozen':>12}"]
    for r in rows:
        lines.append(f"{r.part:<10} {r.trainable:>12,} {r.frozen:>12,}")
    total_t = sum(r.trainable for r in rows)
    total_f = sum(r.frozen for r in rows)
    lines.append(f"{'total':<10} {total_t:>12,} {total_f:>12,}")
    return "\n".join(lines)

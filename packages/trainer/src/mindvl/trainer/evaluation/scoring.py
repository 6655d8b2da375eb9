"""Exact-match scoring against a majority-answer baseline, per task and per category.

Answers are compared after :func:`normalise_answer` (strip, lower-case, collapse spaces,
drop one trailing period). The baseline of a group always answers the group's most
frequent normalised reference (ties broken alphabetically), so a report can say how much
a model beats "always say the commonest answer" on exactly the same items.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from mindvl.common.config import StrictModel
from mindvl.trainer.evaluation.items import EvalItem


class GroupScore(StrictModel):
    n: int
    correct: int
    accuracy: float
    baseline_answer: str
    baseline_correct: int
    baseline_accuracy: float


def normalise_answer(text: str) -> str:
    out = " ".join(text.split()).lower()
    return out[:-1].rstrip() if out.endswith(".") else out


def majority_answer(references: Sequence[str]) -> str:
    """The most frequent normalised reference; ties go to the alphabetically first."""
    counts = Counter(normalise_answer(r) for r in references)
    if not counts:
        return ""
    return min(counts, key=lambda a: (-counts[a], a))


def group_score(references: Sequence[str], predictions: Sequence[str]) -> GroupScore:
    refs = [normalise_answer(r) for r in references]
    n = len(refs)
    correct = sum(r == normalise_answer(p) for r, p in zip(refs, predictions, strict=True))
    base = majority_answer(refs)
    base_correct = sum(r == base for r in refs)
    return GroupScore(
        n=n,
        correct=correct,
        accuracy=correct / n if n else 0.0,
        baseline_answer=base,
        baseline_correct=base_correct,
        baseline_accuracy=base_correct / n if n else 0.0,
    )


def scores_by(
    items: Sequence[EvalItem], predictions: Sequence[str], group: Callable[[EvalItem], str]
) -> dict[str, GroupScore]:
    """One score per group (sorted by name); each group gets its own baseline answer."""
    if len(items) != len(predictions):
        raise ValueError(f"{len(items)} items but {len(predictions)} predictions")
    refs: dict[str, list[str]] = defaultdict(list)
    preds: dict[str, list[str]] = defaultdict(list)
    for item, pred in zip(items, predictions, strict=True):
        refs[group(item)].append(item.reference)
        preds[group(item)].append(pred)
    return {g: group_score(refs[g], preds[g]) for g in sorted(refs)}


def overall(tasks: dict[str, GroupScore]) -> GroupScore:
    """Micro-averaged totals; the baseline answers each task's own majority answer."""
    n = sum(s.n for s in tasks.values())
    correct = sum(s.correct for s in tasks.values())
    base = sum(s.baseline_correct for s in tasks.values())
    return GroupScore(
        n=n,
        correct=correct,
        accuracy=correct / n if n else 0.0,
        baseline_answer="(per task)",
        baseline_correct=base,
        baseline_accuracy=base / n if n else 0.0,
    )

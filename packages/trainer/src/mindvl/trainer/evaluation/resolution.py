"""Test-time resolution search: the image rule a checkpoint should be served with.

Each candidate ``max_pixels`` (same ``min_pixels``) is evaluated on the held-out set; the
best is the highest overall exact-match accuracy, then the lower validation loss, then
the fewer pixels (cheaper at the same quality). It is written into the checkpoint's
``inference.json`` and the whole table into ``eval_resolution.json`` beside it, so the
choice stays explainable. When no setting's overall accuracy is above the majority-answer
baseline there is nothing to choose between: the table is still written, the choice is
``null`` with a note, and ``inference.json`` keeps its rule.

Without ``--max-pixels`` the candidates are the checkpoint's own ``max_pixels`` times 1, 2
and 4 (the rule it was trained with and two larger ones), so the search stays near the
resolution the model knows and its cost near one evaluation at the trained size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from mindvl.common.errors import UserError
from mindvl.common.tokens import ImageTokenRule
from mindvl.trainer.evaluation.report import ResolutionChoice, SettingResult

TABLE_NAME = "eval_resolution.json"
CRITERION = "highest overall accuracy, then lower val loss, then fewer pixels"
DEFAULT_SCALES = (1, 2, 4)  # x the checkpoint's max_pixels


def default_max_pixels(rule: ImageTokenRule) -> list[int]:
    return [rule.max_pixels * k for k in DEFAULT_SCALES]


def candidate_rules(min_pixels: int, max_pixels: Sequence[int]) -> list[ImageTokenRule]:
    rules = []
    for mp in sorted(set(max_pixels)):
        try:
            rules.append(ImageTokenRule(min_pixels=min_pixels, max_pixels=mp))
        except ValueError as err:
            first = str(err).splitlines()[-1].strip()
            raise UserError(f"--max-pixels {mp} with min_pixels {min_pixels}: {first}") from None
    return rules


def _rank(result: SettingResult) -> tuple:
    loss = result.val_loss.loss
    return (-result.overall.accuracy, float("inf") if loss is None else loss,
            result.image_tokens.max_pixels)  # fmt: skip


def pick_best(results: Sequence[SettingResult]) -> SettingResult:
    if not results:
        raise ValueError("no settings were evaluated")
    return min(results, key=_rank)


def table_rows(results: Sequence[SettingResult]) -> list[dict]:
    return [
        {
            "min_pixels": r.image_tokens.min_pixels,
            "max_pixels": r.image_tokens.max_pixels,
            "accuracy": r.overall.accuracy,
            "macro_accuracy": r.macro_accuracy,
            "tasks": {name: g.accuracy for name, g in r.tasks.items()},
            "val_loss": r.val_loss.loss,
            "n": r.overall.n,
            "seconds": r.seconds,
        }
        for r in results
    ]


def beats_baseline(result: SettingResult) -> bool:
    return result.overall.correct > result.overall.baseline_correct


def refusal(results: Sequence[SettingResult]) -> str | None:
    """Why no setting can be chosen (every one at or below the baseline), or None."""
    if any(beats_baseline(r) for r in results):
        return None
    best = pick_best(results)
    return (
        f"no setting beats the majority-answer baseline (best {best.overall.accuracy:.1%} at"
        f" max_pixels={best.image_tokens.max_pixels} vs baseline"
        f" {best.overall.baseline_accuracy:.1%}); nothing chosen, inference.json unchanged"
    )


def write_choice(checkpoint: Path, results: Sequence[SettingResult], data: str) -> ResolutionChoice:
    """Rewrite ``inference.json`` with the best rule (only when it beats the baseline);
    record the search table next to it either way."""
    from mindvl.trainer.model.checkpoint_io import read_inference, write_inference
    from mindvl.trainer.model.config import INFERENCE_NAME

    best = pick_best(results)
    current = read_inference(checkpoint)
    note = refusal(results)
    if note is None:
        update = {"image_tokens": best.image_tokens}
        write_inference(checkpoint, current.model_copy(update=update))
    choice = ResolutionChoice(
        criterion=CRITERION,
        chosen=None if note else best.image_tokens,
        previous=current.image_tokens,
        note=note or "",
        inference_file=str(checkpoint / INFERENCE_NAME),
        table_file=str(checkpoint / TABLE_NAME),
    )
    record = {**choice.model_dump(mode="json"), "data": data, "table": table_rows(results)}
    (checkpoint / TABLE_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return choice

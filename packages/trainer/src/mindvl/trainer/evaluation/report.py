"""The evaluation report (JSON) and its short console table.

One :class:`SettingResult` per image rule evaluated: accuracy per task and category with
each group's majority-answer baseline, the micro (``overall``) and macro (mean over tasks)
accuracy, and the validation loss under that rule.
"""

from __future__ import annotations

from mindvl.common.config import StrictModel
from mindvl.common.tokens import ImageTokenRule
from mindvl.trainer.evaluation.scoring import GroupScore
from mindvl.trainer.evaluation.val_loss import ValLoss

REPORT_NAME = "eval_report.json"


class SettingResult(StrictModel):
    image_tokens: ImageTokenRule
    max_new_tokens: int
    overall: GroupScore
    macro_accuracy: float  # unweighted mean of the tasks' accuracies
    tasks: dict[str, GroupScore]
    categories: dict[str, GroupScore]
    val_loss: ValLoss
    seconds: float


class DataRecord(StrictModel):
    path: str
    manifest_name: str
    stage: str
    total_samples: int  # in the manifest
    samples_read: int  # after --limit
    samples_scored: int
    skipped: dict[str, int]  # read but not scored, by reason


class ResolutionChoice(StrictModel):
    """What the search picked and where it was written."""

    criterion: str
    chosen: ImageTokenRule
    previous: ImageTokenRule
    inference_file: str
    table_file: str


class EvalReport(StrictModel):
    checkpoint: str
    data: DataRecord
    tasks_file: str | None
    settings: list[SettingResult]
    resolution_search: ResolutionChoice | None = None


def _pct(x: float) -> str:
    return f"{100 * x:5.1f}%"


def _loss(v: ValLoss) -> str:
    return "-" if v.loss is None else f"{v.loss:.4f}"


def format_table(report: EvalReport) -> str:
    """Per task (model vs baseline) at each setting, then one line per setting."""
    lines = [
        f"eval {report.checkpoint} on {report.data.path}: {report.data.samples_scored} scored"
        f" of {report.data.samples_read} read"
    ]
    for s in report.settings:
        lines.append(
            f"max_pixels={s.image_tokens.max_pixels} min_pixels={s.image_tokens.min_pixels}"
            f"  accuracy {_pct(s.overall.accuracy)} (baseline {_pct(s.overall.baseline_accuracy)})"
            f"  macro {_pct(s.macro_accuracy)}  val_loss {_loss(s.val_loss)}  {s.seconds:.1f}s"
        )
        width = max([4, *(len(t) for t in s.tasks)])
        lines.append(f"  {'task':<{width}}  {'n':>5}  {'model':>6}  {'base':>6}  baseline answer")
        for name, g in s.tasks.items():
            lines.append(
                f"  {name:<{width}}  {g.n:>5}  {_pct(g.accuracy)}  {_pct(g.baseline_accuracy)}"
                f"  {g.baseline_answer[:40]!r}"
            )
    if report.resolution_search is not None:
        c = report.resolution_search
        lines.append(
            f"chosen max_pixels={c.chosen.max_pixels} ({c.criterion}) -> {c.inference_file}"
        )
    return "\n".join(lines)

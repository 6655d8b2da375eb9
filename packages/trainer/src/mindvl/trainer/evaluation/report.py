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
    questions_scored: int = 0  # items: a sample may hold several questions
    keys_digest: str  # the manifest's selected_keys_digest: which exact eval set
    skipped: dict[str, int]  # read but not scored, by reason


class ResolutionChoice(StrictModel):
    """What the search picked and where it was written; ``chosen`` is None (and
    ``inference.json`` unchanged) when no setting beat the majority baseline."""

    criterion: str
    chosen: ImageTokenRule | None
    previous: ImageTokenRule
    note: str = ""
    inference_file: str
    table_file: str


class EvalReport(StrictModel):
    checkpoint: str
    data: DataRecord
    tasks_file: str | None
    settings: list[SettingResult]
    resolution_search: ResolutionChoice | None = None


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _rows(label: str, groups: list[dict[str, GroupScore]], names: list[str]) -> list[list[str]]:
    rows = [[label, "n", "baseline"]]
    for name in names:
        first = groups[0][name]
        rows.append([name, str(first.n), _pct(first.baseline_accuracy)])
        rows[-1] += [_pct(g[name].accuracy) for g in groups]
    return rows


def format_table(report: EvalReport) -> str:
    """Tasks and categories as rows, one accuracy column per evaluated setting.

    Baselines depend on the references only, so they are the same for every setting.
    """
    settings = report.settings
    d = report.data
    skipped = ", ".join(f"{k} {v}" for k, v in d.skipped.items())
    head = (
        f"eval {report.checkpoint} on {d.path}: {d.samples_scored} scored of {d.samples_read} read,"
        f" {d.questions_scored} questions"
    )
    lines = [head + (f" ({skipped})" if skipped else "")]
    if not settings:
        return lines[0]
    columns = [f"max_pixels={s.image_tokens.max_pixels}" for s in settings]
    table = _rows("task", [s.tasks for s in settings], list(settings[0].tasks))
    table[0] += columns
    total = settings[0].overall
    table.append(["overall", str(total.n), _pct(total.baseline_accuracy)])
    table[-1] += [_pct(s.overall.accuracy) for s in settings]
    tasks = settings[0].tasks.values()
    macro_base = sum(g.baseline_accuracy for g in tasks) / len(tasks) if tasks else 0.0
    table.append(["macro", "", _pct(macro_base)] + [_pct(s.macro_accuracy) for s in settings])
    table.append(["val_loss", "", ""] + [_loss(s.val_loss) for s in settings])
    cats = _rows("category", [s.categories for s in settings], list(settings[0].categories))
    cats[0] += columns
    table += cats
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for row in table:
        cells = [
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    if report.resolution_search is not None:
        c = report.resolution_search
        if c.chosen is None:
            lines.append(f"resolution search: {c.note}")
        else:
            lines.append(
                f"chosen max_pixels={c.chosen.max_pixels} ({c.criterion}) -> {c.inference_file}"
            )
    return "\n".join(lines)


def _loss(v: ValLoss) -> str:
    return "-" if v.loss is None else f"{v.loss:.4f}"

"""Report sections for evaluation, and the headline, from the JSON that ``mindvl eval``
writes (``eval_report.json``): ``settings[]`` each with ``image_tokens`` {min_pixels,
max_pixels}, ``overall``, ``macro_accuracy``, ``tasks`` and ``categories`` (name ->
{n, correct, accuracy, baseline_answer, baseline_correct, baseline_accuracy}),
``val_loss`` {loss, ...} and ``seconds``; ``resolution_search`` {criterion, chosen,
previous, ...} or null; ``data`` {samples_read, samples_scored, skipped}.

The per-task and per-category scores shown are those of the setting the resolution search
chose (or the only/first setting when there was no search): the rule the model ships with.
"""

from __future__ import annotations

from mindvl.common.report.charts import grouped_bars
from mindvl.common.report.document import NA, Chart, Section, Table, fmt
from mindvl.common.report.inputs import Loaded, get, number
from mindvl.common.tokens import FACTOR


def _groups(setting: dict, key: str) -> dict[str, dict]:
    groups = get(setting, key, default={})
    return (
        {str(k): v for k, v in groups.items() if isinstance(v, dict)}
        if isinstance(groups, dict)
        else {}
    )


def shown_setting(report: dict) -> tuple[dict | None, str]:
    """(the setting whose scores the report shows, why that one)."""
    settings = [s for s in get(report, "settings", default=[]) if isinstance(s, dict)]
    if not settings:
        return None, "no settings in the evaluation report"
    chosen = get(report, "resolution_search", "chosen", "max_pixels")
    for s in settings:
        if chosen is not None and get(s, "image_tokens", "max_pixels") == chosen:
            return s, f"max_pixels={chosen}, the resolution search's choice"
    why = "the only setting evaluated" if len(settings) == 1 else "the first setting evaluated"
    return settings[0], f"max_pixels={fmt(get(settings[0], 'image_tokens', 'max_pixels'))}, {why}"


def headline(eval_report: Loaded) -> str:
    """'model beats the majority baseline on K of N tasks: colour 0.62 vs 0.21, ...'."""
    if not eval_report.ok:
        return f"headline n/a: no evaluation report ({eval_report.note})"
    setting, _ = shown_setting(eval_report.data)
    tasks = {n: g for n, g in _groups(setting, "tasks").items() if (number(g.get("n")) or 0) > 0}
    if not tasks:
        return "headline n/a: the evaluation report has no scored tasks"
    beaten = []
    for name, g in tasks.items():
        acc, base = number(g.get("accuracy")), number(g.get("baseline_accuracy"))
        if acc is not None and base is not None and acc > base:
            beaten.append(f"{name} {acc:.2f} vs {base:.2f}")
    line = f"model beats the majority baseline on {len(beaten)} of {len(tasks)} tasks"
    if beaten:
        line += ": " + ", ".join(beaten)
    acc = number(get(setting, "overall", "accuracy"))
    base = number(get(setting, "overall", "baseline_accuracy"))
    if acc is not None and base is not None:
        line += f" (overall {acc:.2f} vs {base:.2f} on {fmt(get(setting, 'overall', 'n'))} items)"
    return line


def _score_block(title: str, groups: dict[str, dict]) -> list:
    if not groups:
        return [f"{title}: n/a (no groups in the evaluation report)."]
    names = list(groups)
    model = [number(groups[n].get("accuracy")) for n in names]
    base = [number(groups[n].get("baseline_accuracy")) for n in names]
    chart = Chart(grouped_bars(title, names, {"model": model, "majority baseline": base}, 1.0, "accuracy"),
                  f"{title}: exact-match accuracy, model vs majority-answer baseline")  # fmt: skip
    rows = [
        [n, fmt(get(g, "n")), fmt(m), fmt(b), fmt(None if m is None or b is None else m - b),
         fmt(get(g, "baseline_answer"))]
        for n, g, m, b in zip(names, groups.values(), model, base, strict=True)
    ]  # fmt: skip
    table = Table([title.split(" per ")[-1], "n", "model", "baseline", "model - baseline",
                   "baseline answer"], rows)  # fmt: skip
    return [chart, table]


def resolution_table(report: dict) -> Table | str:
    settings = [s for s in get(report, "settings", default=[]) if isinstance(s, dict)]
    if not settings:
        return "Resolution search: n/a (no settings)."
    chosen = get(report, "resolution_search", "chosen", "max_pixels")
    rows = []
    for s in settings:
        mp = get(s, "image_tokens", "max_pixels")
        rows.append([
            fmt(mp), fmt(get(s, "image_tokens", "min_pixels")),
            fmt(mp // (FACTOR * FACTOR) if isinstance(mp, int) else None),
            fmt(get(s, "overall", "accuracy")), fmt(get(s, "overall", "baseline_accuracy")),
            fmt(get(s, "macro_accuracy")), fmt(get(s, "val_loss", "loss"), 4),
            fmt(get(s, "overall", "n")), fmt(get(s, "seconds"), 1),
            NA if chosen is None else fmt(mp == chosen),
        ])  # fmt: skip
    return Table(["max_pixels", "min_pixels", "max image tokens", "accuracy", "baseline",
                  "macro accuracy", "val loss", "n", "seconds", "chosen"], rows)  # fmt: skip


def evaluation_sections(eval_report: Loaded) -> Section:
    top = Section("Evaluation")
    if not eval_report.ok:
        return top.add(f"Evaluation: n/a ({eval_report.note}).")
    report = eval_report.data
    setting, why = shown_setting(report)
    data = get(report, "data", default={})
    skipped = get(data, "skipped", default={})
    skipped = skipped if isinstance(skipped, dict) else {}
    skipped_text = ", ".join(f"{k}: {v}" for k, v in sorted(skipped.items())) or "none"
    top.add(f"Checkpoint {fmt(get(report, 'checkpoint'))} on {fmt(get(data, 'path'))}: "
            f"{fmt(get(data, 'samples_scored'))} scored of {fmt(get(data, 'samples_read'))} read, "
            f"{fmt(get(data, 'questions_scored'))} questions "
            f"(skipped: {skipped_text}; eval set keys digest {fmt(get(data, 'keys_digest'))}). "
            f"Scores at {why}; validation loss "
            f"{fmt(get(setting, 'val_loss', 'loss'), 4)}.")  # fmt: skip
    top.add(
        Section("Accuracy per task").add(
            *_score_block("accuracy per task", _groups(setting, "tasks"))
        )
    )
    top.add(Section("Accuracy per category").add(
        *_score_block("accuracy per category", _groups(setting, "categories"))))  # fmt: skip
    res = Section("Resolution search")
    criterion = get(report, "resolution_search", "criterion")
    if criterion:
        before = get(report, "resolution_search", "previous", "max_pixels")
        after = get(report, "resolution_search", "chosen", "max_pixels")
        note = get(report, "resolution_search", "note")
        if after is None and note:  # no setting beat the baseline: nothing was chosen
            res.add(f"Resolution search: {note} (max_pixels stays {fmt(before)}).")
        else:
            res.add(f"Chosen max_pixels={fmt(after)} (was {fmt(before)}); criterion: {criterion}.")
    else:
        res.add("Resolution search: n/a (not run; the settings evaluated are below).")
    res.add(resolution_table(report))
    return top.add(res)

"""The demo's end report: ``report.md`` and ``report.html`` from the files the demo's steps
wrote (build manifests and indexes, training metrics, the evaluation JSON), plus the
step timings the demo measured itself.

Only files are read, so ``mindvl.common`` stays independent of the data engine and the
trainer, and a report still comes out (with "n/a" where something is missing) when a
step failed: that is when a report is most useful.
"""

from __future__ import annotations

from pathlib import Path

from mindvl.common.report.charts import stacked_hbars
from mindvl.common.report.data_sections import build_sections
from mindvl.common.report.document import (
    Chart,
    Document,
    Section,
    Table,
    fmt,
    render_html,
    render_markdown,
)
from mindvl.common.report.eval_sections import evaluation_sections, headline
from mindvl.common.report.inputs import number, read_json
from mindvl.common.report.train_sections import training_sections

MD_NAME = "report.md"
HTML_NAME = "report.html"


def timings_section(timings: object) -> Section:
    s = Section("Timings")
    if not isinstance(timings, dict) or not timings:
        return s.add("Timings: n/a (the demo recorded none).")
    names = [str(k) for k in timings]
    secs = [number(v) for v in timings.values()]
    total = sum(v for v in secs if v is not None)
    s.add(Chart(stacked_hbars("seconds per step", names, {"seconds": [v or 0.0 for v in secs]}, "seconds"),
                "wall-clock seconds per demo step"))  # fmt: skip
    rows = [[n, fmt(v, 1), fmt(None if v is None or not total else v / total)]
            for n, v in zip(names, secs, strict=True)]  # fmt: skip
    rows.append(["total", fmt(total, 1), fmt(1.0 if total else None)])
    return s.add(Table(["step", "seconds", "share"], rows))


def settings_section(extra: dict) -> Section | None:
    """Scalar entries of ``extra`` other than timings (seed, corpus size, ...)."""
    items = [(str(k), str(v) if isinstance(v, Path) else v) for k, v in extra.items()
             if k not in ("timings", "title")
             and (v is None or isinstance(v, str | int | float | bool | Path))]  # fmt: skip
    if not items:
        return None
    return Section("Settings").add(Table(["setting", "value"], [[k, fmt(v)] for k, v in items]))


def build_demo_report(
    builds: dict[str, Path], runs: dict[str, Path], eval_report: Path, extra: dict
) -> Document:
    evaluation = read_json(Path(eval_report))
    sections = [s for s in [settings_section(extra)] if s is not None]
    sections += [
        evaluation_sections(evaluation),
        training_sections(runs),
        build_sections(builds),
        timings_section(extra.get("timings")),
    ]
    title = str(extra.get("title", "mindvl demo report"))
    return Document(title=title, headline=headline(evaluation), sections=sections)


def write_demo_report(
    out_dir: Path, builds: dict[str, Path], runs: dict[str, Path], eval_report: Path, extra: dict
) -> tuple[Path, Path]:
    """Write ``out_dir/report.md`` and ``out_dir/report.html``; print the headline.

    ``builds``: stage name -> build dir (manifest.json, index.parquet, rejects.parquet);
    ``runs``: stage name -> run dir (metrics.jsonl); ``eval_report``: the ``mindvl eval``
    JSON; ``extra``: ``timings`` (step -> seconds), optional ``title`` and scalar settings.
    """
    doc = build_demo_report(builds, runs, eval_report, extra)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md, html = out_dir / MD_NAME, out_dir / HTML_NAME
    for path, text in ((md, render_markdown(doc)), (html, render_html(doc))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    print(doc.headline, flush=True)
    return md, html

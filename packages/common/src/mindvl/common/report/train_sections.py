"""Report sections for training: a loss curve per run and a summary row per run, from
each run directory's ``metrics.jsonl`` (one JSON object per step, written by the
trainer's ``MetricsWriter``: step, loss, lr, tokens_per_s, padding, samples_per_pack,
step_s, tokens_seen, ...). A ``val_loss`` field, where a row carries one, is drawn as a
second curve. A run without metrics (an averaged checkpoint, a failed step) shows "n/a".
MoE runs (rows with ``experts_l{layer}_cv``, the coefficient of variation of the tokens
each expert of that layer got) add a routing-balance chart: one curve per MoE layer, or the
mean and worst layer when there are more than six.
"""

from __future__ import annotations

import re
from pathlib import Path

from mindvl.common.report.charts import line_chart
from mindvl.common.report.document import NA, Chart, Section, Table, fmt
from mindvl.common.report.inputs import Loaded, number, read_jsonl

METRICS_NAME = "metrics.jsonl"


def _series(rows: list[dict], key: str) -> list[tuple[float, float]]:
    out = []
    for r in rows:
        x, y = number(r.get("step")), number(r.get(key))
        if x is not None and y is not None:
            out.append((x, y))
    return out


def _mean(rows: list[dict], key: str) -> float | None:
    vals = [v for v in (number(r.get(key)) for r in rows) if v is not None]
    return sum(vals) / len(vals) if vals else None


def _sum(rows: list[dict], key: str) -> float | None:
    vals = [v for v in (number(r.get(key)) for r in rows) if v is not None]
    return sum(vals) if vals else None


def _last(rows: list[dict], key: str) -> float | None:
    for r in reversed(rows):
        v = number(r.get(key))
        if v is not None:
            return v
    return None


def summary_row(name: str, loaded: Loaded) -> list[str]:
    if not loaded.ok or not loaded.data:
        return [name] + [NA] * 8
    rows = loaded.data
    first_loss = next((v for v in (number(r.get("loss")) for r in rows) if v is not None), None)
    tokens = _last(rows, "tokens_seen")
    return [
        name,
        fmt(len(rows)),
        fmt(first_loss, 4),
        fmt(_last(rows, "loss"), 4),
        fmt(_last(rows, "val_loss"), 4),
        fmt(None if tokens is None else int(tokens)),
        fmt(_mean(rows, "tokens_per_s"), 0),
        fmt(_mean(rows, "padding")),
        fmt(_sum(rows, "step_s"), 1),
    ]


LOAD_KEY = re.compile(r"^experts_l(\d+)_cv$")


def routing_series(rows: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """Tokens-per-expert coefficient of variation per step, by MoE layer (empty if dense)."""
    layers = sorted({int(m[1]) for r in rows for k in r if (m := LOAD_KEY.match(k))})
    per_layer = {f"layer {i}": _series(rows, f"experts_l{i}_cv") for i in layers}
    if len(per_layer) <= 6:
        return per_layer
    steps: dict[float, list[float]] = {}
    for s in per_layer.values():
        for x, y in s:
            steps.setdefault(x, []).append(y)
    return {
        "mean of layers": [(x, sum(v) / len(v)) for x, v in sorted(steps.items())],
        "worst layer": [(x, max(v)) for x, v in sorted(steps.items())],
    }


def training_sections(runs: dict[str, Path]) -> Section:
    top = Section("Training")
    if not runs:
        return top.add("Training: n/a (no runs given).")
    loaded = {name: read_jsonl(Path(d) / METRICS_NAME) for name, d in runs.items()}
    top.add(Table(["run", "steps", "first loss", "last loss", "last val loss", "tokens seen",
                   "mean tokens/s", "mean padding", "train seconds"],
                  [summary_row(n, x) for n, x in loaded.items()]))  # fmt: skip
    for name, x in loaded.items():
        s = Section(f"Loss: {name}")
        if not x.ok:
            s.add(f"Loss curve: n/a ({x.note}; {runs[name]}).")
        elif not _series(x.data, "loss"):
            s.add(f"Loss curve: n/a ({METRICS_NAME} has no rows with step and loss).")
        else:
            series = {"train loss": _series(x.data, "loss")}
            if val := _series(x.data, "val_loss"):
                series["val loss"] = val
            s.add(Chart(line_chart(f"{name}: loss", series, "step", "loss"),
                        f"{name}: loss per step" + (f" ({x.note})" if x.note else "")))  # fmt: skip
            if routing := routing_series(x.data):
                s.add(Chart(line_chart(f"{name}: expert load balance", routing, "step",
                                       "CV of tokens per expert"),
                            f"{name}: coefficient of variation of the tokens routed to each"
                            " expert, per MoE layer (0 = perfectly balanced)"))  # fmt: skip
        top.add(s)
    return top

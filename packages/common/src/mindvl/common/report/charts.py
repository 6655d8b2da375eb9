"""The reports' charts, drawn with matplotlib and inlined as SVG.

Every chart is a matplotlib ``Figure`` (no pyplot, so no global backend or figure state)
saved as SVG with text kept as text (``svg.fonttype: none``), a fixed ``svg.hashsalt``
(so clip-path ids do not change between runs) and no date or creator metadata: the same
inputs give the same bytes. The XML prolog and DOCTYPE are dropped so the SVG can sit
inline in an HTML page; matplotlib escapes every label it writes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
STYLE = {
    "svg.hashsalt": "mindvl-report",
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "legend.frameon": False,
}
NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}
LEGEND_LIMIT = 60  # characters of a legend entry


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def nice_max(v: float) -> float:
    """The smallest 1/2/5 x 10^k at or above ``v`` (a readable axis top)."""
    if v <= 0 or not math.isfinite(v):
        return 1.0
    p = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 5, 10):
        if v <= m * p * (1 + 1e-9):
            return m * p
    return 10 * p


def short(label: str, limit: int) -> str:
    """Labels are cut for layout only; the full text stays in the tables."""
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=NO_METADATA)
    text = buf.getvalue()
    return text[text.index("<svg") :].strip()


def _styled(draw):
    """Run ``draw`` under the report style (fonts, grid, spines), return its SVG."""
    import matplotlib

    with matplotlib.rc_context(STYLE):
        fig = draw()
        return _svg(fig)


def _legend(ax, n: int) -> None:
    if n:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)


def line_chart(
    title: str, series: dict[str, Sequence[tuple[float, float]]], x_label: str, y_label: str
) -> str:
    """One line per series over a shared x axis (e.g. loss vs step); a lone point is a dot."""

    def draw():
        fig, ax = _figure(7.0, 2.8)
        for i, (name, pts) in enumerate(series.items()):
            pts = [(x, y) for x, y in pts if math.isfinite(y)]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o" if len(pts) == 1 else None, markersize=3,
                        linewidth=1.3, color=colour(i), label=short(name, LEGEND_LIMIT))  # fmt: skip
        ax.set(title=title, xlabel=x_label, ylabel=y_label)
        ax.xaxis.get_major_locator().set_params(integer=True)
        _legend(ax, len(series))
        return fig

    return _styled(draw)


def grouped_bars(
    title: str,
    groups: Sequence[str],
    series: dict[str, Sequence[float | None]],
    y_top: float | None,
    y_label: str = "",
) -> str:
    """Bars side by side per group (one colour per series); ``None`` values are left out;
    ``y_top`` None: matplotlib's own axis range."""

    def draw():
        fig, ax = _figure(max(4.5, 1.0 + 0.55 * len(groups) * max(len(series), 1) ** 0.5), 2.8)
        n = max(len(series), 1)
        width = 0.8 / n
        for i, (name, values) in enumerate(series.items()):
            xs = [g + (i - (n - 1) / 2) * width for g, v in enumerate(values) if v is not None]
            ys = [v for v in values if v is not None]
            ax.bar(xs, ys, width, color=colour(i), label=short(name, LEGEND_LIMIT))
        ax.set_xticks(range(len(groups)), [short(g, 16) for g in groups],
                      rotation=30 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center")  # fmt: skip
        ax.set(title=title, ylabel=y_label)
        if y_top is not None:
            ax.set_ylim(0, y_top)
        ax.grid(axis="x", visible=False)
        _legend(ax, len(series))
        return fig

    return _styled(draw)


def _stack(bar, base_arg: str, n: int, segments: dict[str, Sequence[float]]) -> None:
    """Draw ``segments`` as stacked bars with ``bar`` (``ax.bar`` or ``ax.barh``), each
    segment starting where the previous ones end (``base_arg``: bottom or left)."""
    base = [0.0] * n
    for i, (name, values) in enumerate(segments.items()):
        bar(range(n), values, 0.6, color=colour(i), label=short(name, LEGEND_LIMIT),
            **{base_arg: base})  # fmt: skip
        base = [b + v for b, v in zip(base, values, strict=True)]


def stacked_bars(
    title: str, groups: Sequence[str], segments: dict[str, Sequence[float]], y_label: str
) -> str:
    """One vertical bar per group split into segments (e.g. image + text tokens)."""

    def draw():
        fig, ax = _figure(max(4.5, 1.5 + 0.6 * len(groups)), 2.8)
        _stack(ax.bar, "bottom", len(groups), segments)
        ax.set_xticks(range(len(groups)), [short(g, 16) for g in groups])
        ax.set(title=title, ylabel=y_label)
        ax.grid(axis="x", visible=False)
        _legend(ax, len(segments))
        return fig

    return _styled(draw)


def stacked_hbars(
    title: str, rows: Sequence[str], segments: dict[str, Sequence[float]], x_label: str = "samples"
) -> str:
    """One horizontal bar per row, split into coloured segments (e.g. kept + drop reasons)."""

    def draw():
        fig, ax = _figure(7.0, 1.0 + 0.3 * max(len(rows), 1) + 0.12 * len(segments))
        _stack(ax.barh, "left", len(rows), segments)
        ax.set_yticks(range(len(rows)), [short(r, 27) for r in rows])
        ax.invert_yaxis()  # first row on top
        ax.set(title=title, xlabel=x_label)
        ax.grid(axis="y", visible=False)
        _legend(ax, len(segments))
        return fig

    return _styled(draw)

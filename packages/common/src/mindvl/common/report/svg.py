"""Hand-written inline SVG charts for the static demo report.

Three shapes cover every chart in the report: lines over steps (loss curves), grouped
vertical bars (target vs achieved mixture, model vs baseline accuracy) and stacked
horizontal bars (the funnel per source, timings). The SVG is a plain string with every
label escaped, no scripts, no external fonts or stylesheets, so the report opens from
disk anywhere and the same inputs give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
           "#ff9da7", "#9c755f", "#bab0ac")  # fmt: skip
FONT = 'font-family="sans-serif" font-size="11"'


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _num(v: float) -> str:
    """Short tick label: 0.25, 1.2k, 3e-05."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v / 1000:.3g}k"
    if a < 0.01:
        return f"{v:.0e}"
    return f"{v:.3g}"


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
    """Labels are cut for layout only; the full text stays in the bar's tooltip and tables."""
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def _open(width: int, height: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" {FONT}>',
        f"<title>{escape(title)}</title>",
        f'<text x="{width / 2:.0f}" y="14" text-anchor="middle" font-weight="bold">'
        f"{escape(title)}</text>",
    ]


def _legend(names: Sequence[str], x: float, y: float, limit: int = 20) -> list[str]:
    out = []
    for i, name in enumerate(names):
        yy = y + 14 * i
        out.append(
            f'<rect x="{x:.1f}" y="{yy - 8:.1f}" width="10" height="10" fill="{colour(i)}"/>'
        )
        out.append(f'<text x="{x + 14:.1f}" y="{yy + 1:.1f}">{escape(short(name, limit))}</text>')
    return out


def _y_axis(x0: float, y0: float, plot_w: float, plot_h: float, top: float) -> list[str]:
    out = []
    for k in range(5):
        v = top * k / 4
        y = y0 + plot_h - plot_h * k / 4
        out.append(f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x0 + plot_w:.1f}" y2="{y:.1f}" '
                   'stroke="#ddd"/>')  # fmt: skip
        out.append(f'<text x="{x0 - 4:.1f}" y="{y + 4:.1f}" text-anchor="end">{_num(v)}</text>')
    return out


def line_chart(
    title: str, series: dict[str, Sequence[tuple[float, float]]], x_label: str, y_label: str
) -> str:
    """One polyline per series over a shared x axis (e.g. loss vs step)."""
    width, height, left, right, top_pad, bottom = 640, 260, 56, 130, 24, 36
    pw, ph = width - left - right, height - top_pad - bottom
    pts = [p for s in series.values() for p in s if math.isfinite(p[1])]
    xs = [p[0] for p in pts] or [0.0, 1.0]
    ys = [p[1] for p in pts] or [0.0]
    x_min, x_max = min(xs), max(xs)
    x_span = (x_max - x_min) or 1.0
    y_top = nice_max(max(max(ys), 0.0))
    out = _open(width, height, title) + _y_axis(left, top_pad, pw, ph, y_top)
    whole = all(float(x).is_integer() for x in xs)
    for k in range(5):
        xv = x_min + x_span * k / 4
        if whole:  # steps: integer ticks, placed where that step is
            xv = float(round(xv))
            if k and xv == round(x_min + x_span * (k - 1) / 4):
                continue
        x = left + pw * (xv - x_min) / x_span
        out.append(f'<text x="{x:.1f}" y="{top_pad + ph + 14}" text-anchor="middle">'
                   f"{_num(xv)}</text>")  # fmt: skip
    out.append(f'<text x="{left + pw / 2:.0f}" y="{height - 4}" text-anchor="middle">'
               f"{escape(x_label)}</text>")  # fmt: skip
    out.append(f'<text x="12" y="{top_pad + ph / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 12 {top_pad + ph / 2:.0f})">{escape(y_label)}</text>')  # fmt: skip
    for i, s in enumerate(series.values()):
        coords = [
            f"{left + pw * (x - x_min) / x_span:.1f},{top_pad + ph - ph * min(y, y_top) / y_top:.1f}"
            for x, y in s
            if math.isfinite(y)
        ]
        if len(coords) == 1:
            cx, cy = coords[0].split(",")
            out.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{colour(i)}"/>')
        elif coords:
            out.append(f'<polyline fill="none" stroke="{colour(i)}" stroke-width="1.5" '
                       f'points="{" ".join(coords)}"/>')  # fmt: skip
    out += _legend(list(series), left + pw + 12, top_pad + 10)
    out.append("</svg>")
    return "\n".join(out)


def grouped_bars(
    title: str, groups: Sequence[str], series: dict[str, Sequence[float | None]], y_top: float
) -> str:
    """Bars side by side per group (one colour per series); ``None`` values are left out."""
    n_series = max(len(series), 1)
    group_w = max(28.0, 14.0 * n_series + 12)
    left, right, top_pad, bottom = 48, 130, 24, 64
    pw = max(group_w * max(len(groups), 1), 200.0)
    width, height = int(left + pw + right), 280
    ph = height - top_pad - bottom
    bar_w = (pw / max(len(groups), 1) - 8) / n_series
    out = _open(width, height, title) + _y_axis(left, top_pad, pw, ph, y_top)
    for g, name in enumerate(groups):
        gx = left + pw * g / max(len(groups), 1) + 4
        for i, values in enumerate(series.values()):
            v = values[g]
            if v is None:
                continue
            h = ph * min(max(v, 0.0), y_top) / y_top
            out.append(f'<rect x="{gx + bar_w * i:.1f}" y="{top_pad + ph - h:.1f}" '
                       f'width="{bar_w:.1f}" height="{h:.1f}" fill="{colour(i)}">'
                       f"<title>{escape(name)}: {_num(v)}</title></rect>")  # fmt: skip
        cx = gx + bar_w * n_series / 2
        out.append(f'<text x="{cx:.1f}" y="{top_pad + ph + 12}" text-anchor="end" '
                   f'transform="rotate(-35 {cx:.1f} {top_pad + ph + 12})">{escape(short(name, 16))}</text>')  # fmt: skip
    out += _legend(list(series), left + pw + 12, top_pad + 10)
    out.append("</svg>")
    return "\n".join(out)


def stacked_hbars(title: str, rows: Sequence[str], segments: dict[str, Sequence[float]]) -> str:
    """One horizontal bar per row, split into coloured segments (e.g. kept + drop reasons)."""
    label_w = min(max([len(r) for r in rows] + [4]) * 7 + 12, 200)
    plot_w, right, top_pad, row_h = 360, 200, 24, 20
    width = label_w + plot_w + right
    height = int(top_pad + row_h * max(len(rows), 1) + 14 * len(segments) + 20)
    totals = [sum(s[r] for s in segments.values()) for r in range(len(rows))]
    top = max(totals + [0.0]) or 1.0
    out = _open(width, height, title)
    for r, name in enumerate(rows):
        y = top_pad + row_h * r
        out.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">'
                   f"{escape(short(name, 27))}</text>")  # fmt: skip
        x = float(label_w)
        for i, (seg, values) in enumerate(segments.items()):
            w = plot_w * values[r] / top
            if w > 0:
                out.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}" '
                           f'fill="{colour(i)}"><title>{escape(seg)}: {_num(values[r])}</title>'
                           "</rect>")  # fmt: skip
            x += w
        out.append(f'<text x="{x + 4:.1f}" y="{y + 13}">{_num(totals[r])}</text>')
    legend_y = top_pad + row_h * max(len(rows), 1) + 14
    out += _legend(list(segments), label_w, legend_y, limit=80)
    out.append("</svg>")
    return "\n".join(out)

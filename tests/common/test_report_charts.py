"""The report's matplotlib charts (inline SVG) and its two renderers, on tiny inline data."""

import re
import xml.etree.ElementTree as ET

import pytest

from mindvl.common.report.charts import (
    grouped_bars,
    line_chart,
    nice_max,
    stacked_bars,
    stacked_hbars,
)
from mindvl.common.report.document import (
    Chart,
    Document,
    Section,
    Table,
    fmt,
    render_html,
    render_markdown,
)


def test_nice_max_rounds_up_to_1_2_5():
    assert [nice_max(v) for v in (0.0, 0.3, 0.625, 1.0, 3.2, 7.0, 1234)] == [
        1.0,
        0.5,
        1.0,
        1.0,
        5.0,
        10.0,
        2000,
    ]


BAR = re.compile(r'<path d="([^"]*)"\s+clip-path="[^"]*" style="fill: (#[0-9a-f]{6})')


def _bars(svg: str) -> list[tuple[float, str]]:
    """(height, colour) of each bar: matplotlib draws a bar as a clipped 4-corner path."""
    out = []
    for d, fill in BAR.findall(svg):
        ys = [float(y) for y in re.findall(r"[ML] [-\d.]+ ([-\d.]+)", d)]
        out.append((round(max(ys) - min(ys), 3), fill))
    return out


def _texts(svg: str) -> list[str]:
    return [t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]


def test_charts_are_well_formed_byte_stable_svg_with_escaped_labels():
    def charts():
        return [
            line_chart(
                "loss <a>", {"train": [(1, 4.0), (2, 3.0)], "val & co": [(2, 3.5)]}, "step", "loss"
            ),  # fmt: skip
            grouped_bars(
                "mix",
                ["<b>", "ocr"],
                {"target": [0.5, 0.5], "achieved": [None, 0.4]},
                1.0,
                "fraction",
            ),  # fmt: skip
            stacked_hbars("funnel", ['src"1'], {"kept": [3.0], "dropped x: <y>": [1.0]}),
            stacked_bars("tokens", ["a", "b"], {"image": [3.0, 1.0], "text": [1.0, 2.0]}, "tokens"),
        ]

    first = charts()
    assert first == charts()  # same inputs, same bytes (fixed hash salt, no date)
    for svg in first:
        root = ET.fromstring(svg)  # raises on unescaped markup
        assert root.tag == "{http://www.w3.org/2000/svg}svg" and svg.startswith("<svg")
        assert "Date" not in svg and "<script" not in svg
        # namespaces only: nothing to fetch
        assert not re.findall(r"https?://(?!www\.w3\.org/(2000/svg|1999/xlink))", svg)
    assert "&lt;b&gt;" in first[1] and "<b>" not in first[1]
    assert {"loss <a>", "step", "loss", "train", "val & co"} <= set(_texts(first[0]))
    assert {"fraction", "target", "achieved"} <= set(_texts(first[1]))  # axis label, legend
    assert "samples" in _texts(first[2])  # the horizontal bars' axis
    # the None bar is left out: 3 bars, not 4
    assert len(_bars(first[1])) == 3


def test_bar_heights_are_proportional():
    svg = grouped_bars("acc", ["a"], {"model": [0.5], "base": [0.25]}, 1.0)
    (model, c1), (base, c2) = _bars(svg)
    assert model == pytest.approx(2 * base, rel=1e-3) and model > 0 and c1 != c2
    stacked = _bars(stacked_bars("t", ["a"], {"image": [3.0], "text": [1.0]}, "tokens"))
    assert stacked[0][0] == pytest.approx(3 * stacked[1][0], rel=1e-3)


def test_renderers_agree_and_escape():
    doc = Document("t <1>", "head & line", [Section("s|1").add("p <x>", Table(["a|b", "c"], [["1", fmt(None)]]),
                                                               Chart("<svg></svg>", "cap <c>"))])  # fmt: skip
    md, html = render_markdown(doc), render_html(doc)
    assert "**head & line**" in md and "| a\\|b | c |" in md and "| 1 | n/a |" in md
    assert "head &amp; line" in html and "p &lt;x&gt;" in html and "cap &lt;c&gt;" in html
    assert "<td>n/a</td>" in html and html.count("<svg") == doc.charts() == 1
    assert fmt(0.12345) == "0.123" and fmt(True) == "yes" and fmt(7) == "7"


def test_step_axis_has_integer_ticks():
    svg = line_chart(
        "loss",
        {"train": [(1, 3.0), (2, 2.0), (3, 1.5), (4, 1.0), (5, 0.9), (6, 0.8)]},
        "step",
        "loss",
    )
    ticks = [t for t in _texts(svg) if re.fullmatch(r"[\d.]+", t or "")]
    assert ticks and all("." not in t for t in ticks[: len(ticks) // 2])  # x ticks: whole steps


def test_report_imports_neither_the_data_engine_nor_the_trainer():
    import subprocess
    import sys

    code = ("import sys, mindvl.common.report; "
            "bad = [m for m in sys.modules if m.startswith(('mindvl.data_engine', 'mindvl.trainer', 'torch'))]; "
            "assert not bad, bad")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)


def test_long_labels_are_cut_in_charts_only():
    name = "a_very_long_category_name_that_goes_on"
    svg = grouped_bars("mix", [name], {"target": [0.5]}, 1.0)
    assert "a_very_long_cat\u2026" in _texts(svg) and name not in svg

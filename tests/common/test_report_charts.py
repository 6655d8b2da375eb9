"""The report's hand-written SVG charts and its two renderers, on tiny inline data."""

import xml.etree.ElementTree as ET

from mindvl.common.report.document import (
    Chart,
    Document,
    Section,
    Table,
    fmt,
    render_html,
    render_markdown,
)
from mindvl.common.report.svg import grouped_bars, line_chart, nice_max, stacked_hbars


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


def test_charts_are_well_formed_xml_with_escaped_labels():
    charts = [
        line_chart(
            "loss <a>", {"train": [(1, 4.0), (2, 3.0)], "val & co": [(2, 3.5)]}, "step", "loss"
        ),
        grouped_bars("mix", ["<b>", "ocr"], {"target": [0.5, 0.5], "achieved": [None, 0.4]}, 1.0),
        stacked_hbars("funnel", ['src"1'], {"kept": [3.0], "dropped x: <y>": [1.0]}),
    ]
    for svg in charts:
        root = ET.fromstring(svg)  # raises on unescaped markup
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "&lt;b&gt;" in charts[1] and "<b>" not in charts[1]
    # one polyline for the two-point series, a dot for the single point
    assert charts[0].count("<polyline") == 1 and charts[0].count("<circle") == 1
    # the None bar is left out: 3 bars, not 4
    assert charts[1].count("<rect") - 2 == 3  # minus the two legend swatches


def test_bar_heights_are_proportional():
    svg = grouped_bars("acc", ["a"], {"model": [0.5], "base": [0.25]}, 1.0)
    heights = [float(r.get("height")) for r in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}rect")
               if r.find("{http://www.w3.org/2000/svg}title") is not None]  # fmt: skip
    assert heights[0] == 2 * heights[1] > 0


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
    root = ET.fromstring(svg)
    ticks = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("y") == "238"]
    assert ticks == ["1", "2", "4", "5", "6"]


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
    texts = [t.text for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
    assert "a_very_long_cat\u2026" in texts
    assert f"<title>{name}: 0.5</title>" in svg  # the tooltip keeps the full name

"""A tiny document model rendered twice: Markdown (for terminals and diffs) and one
self-contained HTML file (for a browser, with inline SVG charts).

Sections are built once from the inputs, so both files always say the same thing. All
text is plain text here; the HTML renderer escapes every string it writes, the Markdown
renderer escapes table pipes. Charts carry their numbers in a table next to them, so the
Markdown loses nothing but the picture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

NA = "n/a"


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Chart:
    svg: str  # inline SVG from mindvl.common.report.charts
    caption: str


@dataclass
class Thumb:
    image_uri: str | None  # a data: URI (small JPEG), None when the image did not decode
    title: str  # the sample key
    text: str  # the sample's caption or first question and answer


@dataclass
class Gallery:
    thumbs: list[Thumb]


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Chart | Gallery | Section] = field(default_factory=list)

    def add(self, *blocks: str | Table | Chart | Gallery | Section) -> Section:
        self.blocks.extend(blocks)
        return self


@dataclass
class Document:
    title: str
    headline: str
    sections: list[Section]

    def charts(self) -> int:
        def count(s: Section) -> int:
            return sum(
                1 if isinstance(b, Chart) else count(b) if isinstance(b, Section) else 0
                for b in s.blocks
            )

        return sum(count(s) for s in self.sections)


def fmt(value: object, digits: int = 3) -> str:
    """Numbers to short text; a missing value is ``n/a``."""
    if value is None:
        return NA
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _md_text(text: str) -> str:
    """Backslash-escape ``<``/``>`` so a name like ``<b>`` is not read as inline HTML."""
    return text.replace("\\", "\\\\").replace("<", "\\<").replace(">", "\\>")


def _md_cell(text: str) -> str:
    return _md_text(text).replace("|", "\\|").replace("\n", " ")


def _md_section(s: Section, level: int) -> list[str]:
    out = ["#" * level + " " + _md_text(s.title), ""]
    for b in s.blocks:
        if isinstance(b, str):
            out += [_md_text(b), ""]
        elif isinstance(b, Table):
            out.append("| " + " | ".join(_md_cell(h) for h in b.headers) + " |")
            out.append("|" + "---|" * len(b.headers))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("")
        elif isinstance(b, Chart):
            out += [f"*Chart: {_md_text(b.caption)} (see report.html)*", ""]
        elif isinstance(b, Gallery):
            out += ["| sample | text |", "|---|---|"]
            out += [f"| {_md_cell(t.title)} | {_md_cell(t.text)} |" for t in b.thumbs]
            out.append("")
        else:
            out += _md_section(b, level + 1)
    return out


def render_markdown(doc: Document) -> str:
    lines = [f"# {_md_text(doc.title)}", "", f"**{_md_text(doc.headline)}**", ""]
    for s in doc.sections:
        lines += _md_section(s, 2)
    return "\n".join(lines).rstrip() + "\n"


CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:2px 8px;
text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}
.headline{font-size:1.2em;font-weight:bold;background:#eef5ee;padding:.6em;border-radius:4px}
figure{margin:.5em 0 1.5em;overflow-x:auto}figcaption{color:#555;font-size:.9em}
.gallery{display:flex;flex-wrap:wrap;gap:8px}.thumb{width:170px;margin:0}
.thumb img{display:block;max-width:160px;border:1px solid #ddd}
.thumb figcaption{font-size:.78em;overflow-wrap:anywhere}.thumb b{color:#222}"""


def _html_section(s: Section, level: int) -> list[str]:
    h = min(level, 6)
    out = [f"<section><h{h}>{escape(s.title)}</h{h}>"]
    for b in s.blocks:
        if isinstance(b, str):
            out.append(f"<p>{escape(b)}</p>")
        elif isinstance(b, Table):
            out.append("<table><thead><tr>")
            out.append("".join(f"<th>{escape(x)}</th>" for x in b.headers))
            out.append("</tr></thead><tbody>")
            for row in b.rows:
                out.append("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>")
            out.append("</tbody></table>")
        elif isinstance(b, Chart):
            out.append(f"<figure>{b.svg}<figcaption>{escape(b.caption)}</figcaption></figure>")
        elif isinstance(b, Gallery):
            out.append('<div class="gallery">')
            for t in b.thumbs:
                img = (f'<img src="{escape(t.image_uri)}" alt="{escape(t.title)}">'
                       if t.image_uri else "<p>(image did not decode)</p>")  # fmt: skip
                out.append(f'<figure class="thumb">{img}<figcaption><b>{escape(t.title)}</b>'
                           f"<br>{escape(t.text)}</figcaption></figure>")  # fmt: skip
            out.append("</div>")
        else:
            out += _html_section(b, level + 1)
    out.append("</section>")
    return out


def render_html(doc: Document) -> str:
    """One static page: inline CSS and SVG, no scripts, no external resources."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(doc.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(doc.title)}</h1>",
        f'<p class="headline">{escape(doc.headline)}</p>',
    ]
    for s in doc.sections:
        parts += _html_section(s, 2)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

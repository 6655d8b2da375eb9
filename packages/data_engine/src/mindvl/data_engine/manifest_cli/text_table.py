"""Plain aligned text tables and Markdown tables for the manifest commands."""

from __future__ import annotations


def _cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def text_table(head: list[str], rows: list[list[object]]) -> str:
    cells = [head] + [[_cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(head: list[str], rows: list[list[object]]) -> str:
    esc = [[_cell(v).replace("|", "\\|") for v in r] for r in rows]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in esc]
    return "\n".join(out)

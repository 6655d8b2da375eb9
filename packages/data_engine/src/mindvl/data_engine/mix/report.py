"""``report.html``: a static page next to the manifest (no server, no external files).

Target vs achieved mixture as an inline SVG bar chart, the funnel per source, the shards,
and a few small base64 JPEG thumbnails per category.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from mindvl.common.manifest import RatioManifest

REPORT_NAME = "report.html"
THUMB_PX = 96
COLORS = ("#4c78a8", "#f58518")


def thumbnail(data: bytes, px: int = THUMB_PX) -> str | None:
    """A data: URI of a small JPEG, or None if the image cannot be decoded."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            im.thumbnail((px, px))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=70)
    except Exception:  # a thumbnail is decoration; never fail a build for it
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def mixture_svg(m: RatioManifest) -> str:
    cats = m.mixture.categories
    unit = m.mixture.unit
    row, bar, left, width = 34, 12, 120, 360
    h = row * len(cats) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 80}" height="{h}" role="img">'
    ]
    for i, c in enumerate(cats):
        y = 10 + i * row
        ach = c.achieved_fraction_tokens if unit == "tokens" else c.achieved_fraction_samples
        parts.append(f'<text x="0" y="{y + 14}" font-size="12">{html.escape(c.category)}</text>')
        for j, (v, label) in enumerate(((c.target_fraction, "target"), (ach, "achieved"))):
            w = max(0.0, v) * width
            parts.append(
                f'<rect x="{left}" y="{y + j * bar}" width="{w:.1f}" height="{bar - 1}" fill="{COLORS[j]}">'
                f"<title>{label} {v:.4f}</title></rect>"
            )
            parts.append(
                f'<text x="{left + w + 4:.1f}" y="{y + j * bar + 10}" font-size="10">{v:.3f}</text>'
            )
    parts.append(
        f'<text x="{left}" y="{h - 4}" font-size="11"><tspan fill="{COLORS[0]}">■ target</tspan> '
        f'<tspan fill="{COLORS[1]}">■ achieved (by {unit})</tspan></text></svg>'
    )
    return "".join(parts)


def _table(head: list[str], rows: list[list[object]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def render_report(m: RatioManifest, thumbs: dict[str, list[tuple[str, str]]]) -> str:
    mix = _table(
        [
            "category",
            "target",
            "achieved (samples)",
            "achieved (tokens)",
            "samples",
            "unique",
            "repeats",
            "image tok",
            "text tok",
            "available",
        ],
        [
            [
                c.category,
                f"{c.target_fraction:.4f}",
                f"{c.achieved_fraction_samples:.4f}",
                f"{c.achieved_fraction_tokens:.4f}",
                c.samples,
                c.selected_unique,
                c.repeats,
                c.image_tokens,
                c.text_tokens,
                c.available_samples,
            ]
            for c in m.mixture.categories
        ],
    )
    sources = _table(
        ["source", "category", "input", "kept", "dropped"],
        [[s.source, s.category, s.input, s.kept, s.dropped] for s in m.sources],
    )
    funnel = _table(
        ["source", "stage", "op", "reason", "count"],
        [[f.source, f.stage, f.op, f.reason, f.count] for f in m.funnel],
    )
    shards = _table(
        ["shard", "samples", "bytes", "sha256"],
        [[s.name, s.samples, s.bytes, s.sha256[:16]] for s in m.shards],
    )
    gallery = []
    for cat in sorted(thumbs):
        imgs = "".join(
            f'<img src="{uri}" title="{html.escape(key)}" alt="{html.escape(key)}">'
            for key, uri in thumbs[cat]
        )
        gallery.append(f"<h3>{html.escape(cat)}</h3><div class=thumbs>{imgs}</div>")
    rebalanced = " (rebalanced after a shortfall)" if m.mixture.rebalanced else ""
    title = html.escape(f"{m.name} / {m.stage}")
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2em}}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px}"
        ".thumbs img{margin:2px;border:1px solid #ddd}</style></head><body>"
        f"<h1>{title}</h1><p>{m.total_samples} samples, {m.total_image_tokens} image + "
        f"{m.total_text_tokens} text tokens in {len(m.shards)} shards; budget {m.mixture.budget} "
        f"{m.mixture.unit}{rebalanced}; seed {m.seed}; code {html.escape(m.code_version)}</p>"
        f"<h2>Mixture</h2>{mixture_svg(m)}{mix}<h2>Sources</h2>{sources}<h2>Funnel</h2>{funnel}"
        f"<h2>Shards</h2>{shards}<h2>Samples</h2>{''.join(gallery)}</body></html>\n"
    )


def write_report(path: Path, m: RatioManifest, thumbs: dict[str, list[tuple[str, str]]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_report(m, thumbs), encoding="utf-8")
    tmp.replace(path)

"""Hard negatives for dedup: distinct images that look alike to a careless hash.

* icons: RGBA whose RGB is black everywhere; only alpha carries the shape, so a hash that
  drops alpha sees every icon as the same black square;
* document pages: mostly white with a few different short lines of small text;
* line art: a few thin lines, or bare axes with one thin polyline, on white.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from mindvl.data_engine.synth.canvas import font
from mindvl.data_engine.synth.ocr import WORDS
from mindvl.data_engine.synth.records import Rendered
from mindvl.data_engine.synth.shapes import draw_shape

ICON_SHAPES = ("circle", "square", "triangle", "diamond", "ring", "cross")
KIND_BY_CATEGORY = {"caption": "icon", "grounding": "icon", "ocr": "document", "chart": "line_art"}

QUESTION_ICON = "What shape is the icon?"
QUESTION_DOCUMENT = "What is the first line of text?"
QUESTION_LINES = "How many lines are drawn?"
QUESTION_CHART_KIND = "What kind of chart is this?"


def render_icon(rng: np.random.Generator, min_side: int, max_side: int) -> Rendered:
    side = int(rng.integers(min_side, max(min_side, min(max_side, 256)) + 1))
    alpha = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(alpha)
    shape = ICON_SHAPES[int(rng.integers(len(ICON_SHAPES)))]
    extent = side * float(rng.uniform(0.4, 0.85))
    x0 = float(rng.uniform(0.05, 0.95)) * (side - extent)
    y0 = float(rng.uniform(0.05, 0.95)) * (side - extent)
    box = (int(x0), int(y0), int(x0 + extent), int(y0 + extent))
    if shape == "ring":
        t = max(2, int(extent * 0.15))
        draw.ellipse(box, fill=255)
        draw.ellipse((box[0] + t, box[1] + t, box[2] - t, box[3] - t), fill=0)
    elif shape == "cross":
        t = max(2, int(extent * 0.12))
        mx, my = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
        draw.rectangle((box[0], my - t, box[2], my + t), fill=255)
        draw.rectangle((mx - t, box[1], mx + t, box[3]), fill=255)
    else:
        draw_shape(draw, shape, box, 255)
    black = Image.new("L", (side, side), 0)
    img = Image.merge("RGBA", (black, black, black, alpha))
    caption = f"A black {shape} icon on a transparent background."
    layout = tuple(v / side for v in box)
    return Rendered(img, caption, QUESTION_ICON, shape, n_objects=1, low_info_kind="icon",
                    layout_key=caption, layout=layout)  # fmt: skip


def render_document(rng: np.random.Generator, min_side: int, max_side: int) -> Rendered:
    h = int(rng.integers(max(min_side, (min_side + max_side) // 2), max_side + 1))
    w = max(min_side, int(h / float(rng.uniform(1.3, 1.45))))
    img = Image.new("RGB", (w, h), (252, 252, 252))
    draw = ImageDraw.Draw(img)
    fs = max(7, int(h * 0.025))
    f = font("DejaVuSerif.ttf" if rng.random() < 0.5 else "DejaVuSans.ttf", fs)
    k = int(rng.integers(2, 6))
    lines = []
    y = int(h * 0.08)
    for _ in range(k):
        line = " ".join(WORDS[int(i)] for i in rng.integers(0, len(WORDS), int(rng.integers(2, 5))))
        lines.append(line)
        draw.text((int(w * 0.08), y), line, font=f, fill=(45, 45, 45))
        y += int(fs * 1.6)
    caption = f"A mostly blank document page with {k} short lines of small text."
    return Rendered(
        img, caption, QUESTION_DOCUMENT, lines[0], n_objects=k, low_info_kind="document"
    )


def render_line_art(rng: np.random.Generator, min_side: int, max_side: int) -> Rendered:
    side = int(rng.integers(min_side, max_side + 1))
    size = (side, max(min_side, int(side * float(rng.uniform(0.6, 1.0)))))
    w, h = size
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    if rng.random() < 0.5:
        k = int(rng.integers(1, 5))
        for _ in range(k):
            x0, x1 = (float(v) * w for v in rng.uniform(0.05, 0.95, 2))
            y0, y1 = (float(v) * h for v in rng.uniform(0.05, 0.95, 2))
            draw.line([(x0, y0), (x1, y1)], fill=(60, 60, 60), width=1)
        caption = f"Sparse line art: {k} thin grey line{'s' if k > 1 else ''} on white."
        return Rendered(img, caption, QUESTION_LINES, str(k), n_objects=k, low_info_kind="line_art")
    left, bottom = int(w * 0.1), int(h * 0.9)
    draw.line(
        [(left, int(h * 0.08)), (left, bottom), (int(w * 0.95), bottom)], fill=(60, 60, 60), width=1
    )
    n = int(rng.integers(3, 8))
    xs = np.linspace(left + 4, w * 0.93, n)
    ys = bottom - rng.uniform(0.05, 0.8, n) * (bottom - h * 0.08)
    draw.line(
        [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)], fill=(60, 60, 60), width=1
    )
    caption = "A flat, unlabelled line chart drawn with thin grey lines on white."
    return Rendered(
        img, caption, QUESTION_CHART_KIND, "line chart", n_objects=n, low_info_kind="line_art"
    )


def render_low_info(
    rng: np.random.Generator, category: str, min_side: int, max_side: int
) -> Rendered:
    kind = KIND_BY_CATEGORY[category]
    if kind == "icon":
        return render_icon(rng, min_side, max_side)
    if kind == "document":
        return render_document(rng, min_side, max_side)
    return render_line_art(rng, min_side, max_side)

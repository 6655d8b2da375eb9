"""OCR category: words in DejaVu fonts at varied sizes and rotations on varied backgrounds."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from mindvl.data_engine.synth.canvas import (
    FONT_FACES,
    background,
    choose_size,
    contrasting_ink,
    font,
    luminance,
    random_style,
)
from mindvl.data_engine.synth.records import Rendered

QUESTION_TEXT = "What text is written in the image?"

_WORD_TEXT = (
    "apple river stone cloud garden window silver forest market yellow orange summer winter "
    "bridge candle doctor engine falcon guitar harbor island jacket kettle ladder meadow "
    "needle ocean pepper quartz rabbit saddle tiger umbrella violet walnut yogurt zebra "
    "anchor basket castle desert eagle feather glacier hammer igloo jungle kitten lemon "
    "mirror nickel orbit pillow quiet rocket sunset tunnel valley wizard copper morning "
    "signal planet coffee paper school station number letter open closed north south "
    "east west exit entry sale fresh bread milk tea book music light dark green blue red "
    "hello world welcome stop slow danger free city park road lane street house hotel"
)
WORDS = tuple(_WORD_TEXT.split())


def pick_text(rng: np.random.Generator) -> list[str]:
    """1-3 lines of 1-3 words, in lower, title or upper case."""
    n_lines = int(rng.integers(1, 4))
    case = int(rng.integers(3))
    lines = []
    for _ in range(n_lines):
        words = [WORDS[int(i)] for i in rng.integers(0, len(WORDS), int(rng.integers(1, 4)))]
        line = " ".join(words)
        lines.append(line if case == 0 else line.title() if case == 1 else line.upper())
    return lines


def text_layer(text: str, face: str, size: int, ink: tuple[int, int, int]) -> Image.Image:
    """The text on a transparent layer cropped to its extent."""
    f = font(face, size)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    x0, y0, x1, y1 = (
        int(v) for v in probe.multiline_textbbox((0, 0), text, font=f, align="center")
    )
    layer = Image.new("RGBA", (x1 - x0 + 4, y1 - y0 + 4), (*ink, 0))
    ImageDraw.Draw(layer).multiline_text(
        (2 - x0, 2 - y0), text, font=f, fill=(*ink, 255), align="center"
    )
    return layer


def fit_layer(layer: Image.Image, max_w: int, max_h: int) -> Image.Image:
    scale = min(1.0, max_w / layer.width, max_h / layer.height)
    if scale < 1.0:
        layer = layer.resize(
            (max(1, int(layer.width * scale)), max(1, int(layer.height * scale))),
            Image.Resampling.BILINEAR,
        )
    return layer


def render_ocr(rng: np.random.Generator, min_side: int, max_side: int) -> Rendered:
    size = choose_size(rng, min_side, max_side)
    w, h = size
    base = tuple(int(v) for v in rng.integers(0, 256, 3))
    img = background(rng, size, base, random_style(rng))
    ink = contrasting_ink(rng, base)
    face, face_desc = FONT_FACES[int(rng.integers(len(FONT_FACES)))]
    lines = pick_text(rng)
    text = "\n".join(lines)

    layer = text_layer(text, face, int(h * float(rng.uniform(0.08, 0.22))), ink)
    angle = 0.0 if rng.random() < 0.5 else float(rng.uniform(-20, 20))
    if angle:
        layer = layer.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    layer = fit_layer(layer, int(w * 0.88), int(h * 0.88))
    x = int(rng.integers(0, w - layer.width + 1))
    y = int(rng.integers(0, h - layer.height + 1))
    x = min(max(x, int(w * 0.06)), max(0, w - layer.width - int(w * 0.06)))
    y = min(max(y, int(h * 0.06)), max(0, h - layer.height - int(h * 0.06)))
    img.paste(layer, (x, y), layer)

    answer = " ".join(lines)
    tone = "light" if luminance(base) > 120 else "dark"
    caption = f'The text "{answer}" written in {face_desc} type on a {tone} background.'
    return Rendered(img, caption, QUESTION_TEXT, answer, n_objects=len(lines))

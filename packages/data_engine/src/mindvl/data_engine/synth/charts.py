"""Chart/STEM category: bar charts and line charts with labelled values, and equations."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from mindvl.data_engine.synth.canvas import FONT_FACES, SHAPE_COLOURS, choose_size, font
from mindvl.data_engine.synth.records import Rendered

QUESTION_VALUE = "What is the value of {label}?"
QUESTION_MAX = "Which category has the highest value?"
QUESTION_AT = "What is the value at {label}?"
QUESTION_EQUATION = "What is the answer to the equation in the image?"

BAR_LABELS = ("apples", "pears", "plums", "figs", "kiwis", "limes", "dates", "grapes")
LINE_LABELS = (
    ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    ("2018", "2019", "2020", "2021", "2022", "2023", "2024"),
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul"),
)
PAPER = ((255, 255, 255), (248, 246, 238), (236, 242, 250))
INK = (30, 30, 30)


def _plot_area(size: tuple[int, int]) -> tuple[int, int, int, int, int]:
    w, h = size
    fs = max(7, int(min(w, h) * 0.055))
    return int(w * 0.08), int(h * 0.1) + fs, int(w * 0.95), h - 2 * fs - int(h * 0.04), fs


def _fitting_font(fs: int, labels: list[str], slot: float):
    """The chart font, shrunk until the widest label fits its slot."""
    f = font("DejaVuSans.ttf", fs)
    widest = max(f.getlength(label) for label in labels)
    if widest > slot * 0.92:
        f = font("DejaVuSans.ttf", int(fs * slot * 0.92 / widest))
    return f


def _axes(draw: ImageDraw.ImageDraw, left: int, top: int, right: int, bottom: int) -> None:
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=INK, width=1)


def render_bar(rng: np.random.Generator, size: tuple[int, int]) -> Rendered:
    img = Image.new("RGB", size, PAPER[int(rng.integers(len(PAPER)))])
    draw = ImageDraw.Draw(img)
    left, top, right, bottom, fs = _plot_area(size)
    k = int(rng.integers(3, 7))
    labels = [BAR_LABELS[int(i)] for i in np.sort(rng.choice(len(BAR_LABELS), k, replace=False))]
    values = [int(v) for v in rng.choice(np.arange(1, 21), k, replace=False)]
    colour = list(SHAPE_COLOURS.values())[int(rng.integers(len(SHAPE_COLOURS)))]
    _axes(draw, left, top, right, bottom)
    slot = (right - left) / k
    f = _fitting_font(fs, labels, slot)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x0 = left + i * slot + slot * 0.2
        x1 = left + (i + 1) * slot - slot * 0.2
        y0 = min(bottom - 2, bottom - (bottom - top) * value / 20)
        draw.rectangle([x0, y0, x1, bottom - 1], fill=colour)
        cx = (x0 + x1) / 2
        draw.text((cx, y0 - 2), str(value), font=f, fill=INK, anchor="mb")
        draw.text((cx, bottom + 3), label, font=f, fill=INK, anchor="mt")
    pairs = ", ".join(f"{lab} {val}" for lab, val in zip(labels, values, strict=True))
    caption = f"A bar chart with {k} bars: {pairs}."
    if rng.random() < 0.3:
        question, answer = QUESTION_MAX, labels[int(np.argmax(values))]
    else:
        i = int(rng.integers(k))
        question, answer = QUESTION_VALUE.format(label=labels[i]), str(values[i])
    return Rendered(img, caption, question, answer, n_objects=k)


def render_line(rng: np.random.Generator, size: tuple[int, int]) -> Rendered:
    paper = PAPER[int(rng.integers(len(PAPER)))]
    img = Image.new("RGB", size, paper)
    draw = ImageDraw.Draw(img)
    left, top, right, bottom, fs = _plot_area(size)
    k = int(rng.integers(4, 8))
    axis = LINE_LABELS[int(rng.integers(len(LINE_LABELS)))]
    start = int(rng.integers(0, len(axis) - k + 1))
    labels = list(axis[start : start + k])
    values = [int(v) for v in rng.integers(0, 51, k)]
    colour = list(SHAPE_COLOURS.values())[int(rng.integers(len(SHAPE_COLOURS)))]
    _axes(draw, left, top, right, bottom)
    step = (right - left) / k
    f = _fitting_font(fs, labels, step)
    points = [
        (left + (i + 0.5) * step, bottom - (bottom - top) * v / 50) for i, v in enumerate(values)
    ]
    draw.line(points, fill=colour, width=max(1, fs // 5))
    r = max(2, fs // 4)
    for (x, y), label, value in zip(points, labels, values, strict=True):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        draw.text(
            (x, y - r - 1),
            str(value),
            font=f,
            fill=INK,
            anchor="mb",
            stroke_width=2,
            stroke_fill=paper,
        )
        draw.text((x, bottom + 3), label, font=f, fill=INK, anchor="mt")
    pairs = ", ".join(f"{lab} {val}" for lab, val in zip(labels, values, strict=True))
    caption = f"A line chart with {k} points: {pairs}."
    i = int(rng.integers(k))
    return Rendered(img, caption, QUESTION_AT.format(label=labels[i]), str(values[i]), n_objects=k)


def render_equation(rng: np.random.Generator, size: tuple[int, int]) -> Rendered:
    w, h = size
    img = Image.new("RGB", size, PAPER[int(rng.integers(len(PAPER)))])
    draw = ImageDraw.Draw(img)
    op = "+-×"[int(rng.integers(3))]
    a, b = (int(v) for v in rng.integers(1, 21, 2))
    if op == "-" and b > a:
        a, b = b, a
    result = a + b if op == "+" else a - b if op == "-" else a * b
    text = f"{a} {op} {b} = ?"
    face = FONT_FACES[int(rng.integers(len(FONT_FACES)))][0]
    size_px = int(h * float(rng.uniform(0.15, 0.3)))
    f = font(face, size_px)
    x0, _, x1, _ = draw.textbbox((0, 0), text, font=f)
    if x1 - x0 > w * 0.85:
        f = font(face, int(size_px * w * 0.85 / (x1 - x0)))
    draw.text((w / 2, h / 2), text, font=f, fill=INK, anchor="mm")
    caption = f'The equation "{text}" written on a light background.'
    x0, y0, x1, y1 = draw.textbbox((w / 2, h / 2), text, font=f, anchor="mm")
    layout = (x0 / w, y0 / h, x1 / w, y1 / h)
    return Rendered(img, caption, QUESTION_EQUATION, str(result), n_objects=1,
                    layout_key=f"{caption}\0{face}", layout=layout)  # fmt: skip


def render_chart(rng: np.random.Generator, min_side: int, max_side: int) -> Rendered:
    size = choose_size(rng, min_side, max_side)
    kind = rng.random()
    if kind < 0.4:
        return render_bar(rng, size)
    if kind < 0.7:
        return render_line(rng, size)
    return render_equation(rng, size)

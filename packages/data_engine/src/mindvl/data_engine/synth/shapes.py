"""Flat shapes placed on a grid without overlap; shared by scenes and grounding."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

SHAPES = ("circle", "square", "triangle", "diamond")
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class PlacedShape:
    shape: str
    colour: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, inclusive of the drawn extent


def layout_boxes(
    rng: np.random.Generator, size: tuple[int, int], k: int
) -> list[tuple[int, int, int, int]]:
    """k square boxes in distinct cells of a grid that follows the canvas aspect."""
    w, h = size
    cols = 3 if w >= h else 2
    rows = 2 if w >= h else 3
    if w > 1.7 * h:
        cols, rows = 4, 2
    elif h > 1.7 * w:
        cols, rows = 2, 4
    cells = rng.permutation(cols * rows)[:k]
    cw, ch = w / cols, h / rows
    boxes = []
    for cell in cells:
        cx, cy = int(cell) % cols, int(cell) // cols
        side = max(6.0, min(cw, ch) * float(rng.uniform(0.45, 0.8)))
        x0 = cx * cw + float(rng.uniform(0.05, 0.95)) * (cw - side)
        y0 = cy * ch + float(rng.uniform(0.05, 0.95)) * (ch - side)
        boxes.append((int(x0), int(y0), int(x0 + side), int(y0 + side)))
    return boxes


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], fill) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=fill)
    elif shape == "diamond":
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        draw.polygon([(mx, y0), (x1, my), (mx, y1), (x0, my)], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def count_phrase(count: int, colour: str, shape: str) -> str:
    """'a red circle', 'an orange square', 'three blue triangles'."""
    if count == 1:
        article = "an" if colour[0] in "aeiou" else "a"
        return f"{article} {colour} {shape}"
    return f"{NUMBER_WORDS[count]} {colour} {shape}s"


def join_phrases(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def to_thousandths(box: tuple[int, int, int, int], size: tuple[int, int]) -> str:
    """A pixel box as '[x0, y0, x1, y1]' in 0-1000 coordinates."""
    w, h = size
    x0, y0, x1, y1 = box
    vals = [round(x0 * 1000 / w), round(y0 * 1000 / h), round(x1 * 1000 / w), round(y1 * 1000 / h)]
    return "[" + ", ".join(str(min(1000, max(0, v))) for v in vals) + "]"

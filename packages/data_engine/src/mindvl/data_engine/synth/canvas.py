"""Canvases: image sizes, named colours, backgrounds (flat, gradient, noise) and fonts."""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFont

SHAPE_COLOURS = {
    "red": (215, 40, 40),
    "green": (40, 165, 60),
    "blue": (40, 80, 215),
    "yellow": (235, 205, 35),
    "purple": (135, 55, 175),
    "orange": (240, 135, 25),
}
BACKGROUND_COLOURS = {
    "grey": (128, 128, 128),
    "white": (244, 244, 244),
    "black": (22, 22, 22),
}
ASPECTS = (1.0, 1.0, 4 / 3, 3 / 2, 16 / 9, 2.0, 5 / 4)

# DejaVu faces shipped with matplotlib: (file name, short description for captions).
FONT_FACES = (
    ("DejaVuSans.ttf", "sans-serif"),
    ("DejaVuSans-Bold.ttf", "bold sans-serif"),
    ("DejaVuSans-Oblique.ttf", "italic sans-serif"),
    ("DejaVuSerif.ttf", "serif"),
    ("DejaVuSerif-Bold.ttf", "bold serif"),
    ("DejaVuSerif-Italic.ttf", "italic serif"),
    ("DejaVuSansMono.ttf", "monospace"),
    ("DejaVuSansMono-Bold.ttf", "bold monospace"),
)


def choose_size(rng: np.random.Generator, min_side: int, max_side: int) -> tuple[int, int]:
    """A (width, height) with both sides in [min_side, max_side] and a varied aspect ratio."""
    long_side = int(rng.integers(min_side, max_side + 1))
    aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
    short_side = max(min_side, round(long_side / aspect))
    return (long_side, short_side) if rng.random() < 0.6 else (short_side, long_side)


def background(
    rng: np.random.Generator, size: tuple[int, int], base: tuple[int, int, int], style: str
) -> Image.Image:
    """An RGB canvas around ``base``: "flat", "gradient" (±24 along one axis) or "noise" (±16)."""
    w, h = size
    if style == "flat":
        return Image.new("RGB", size, base)
    if style == "gradient":
        horizontal = rng.random() < 0.5
        n = w if horizontal else h
        ramp = np.linspace(-24, 24, n, dtype=np.float32).astype(np.int16)[:, None]
        line = np.clip(np.asarray(base, dtype=np.int16)[None, :] + ramp, 0, 255).astype(np.uint8)
        strip = Image.fromarray(line[None, :, :] if horizontal else line[:, None, :], "RGB")
        return strip.resize(size, Image.Resampling.NEAREST)
    if style == "noise":
        # Per-channel lookup table applied in C: v -> clip(base + v // 8 - 16).
        lut = []
        for c in base:
            lut += [min(255, max(0, c + (v >> 3) - 16)) for v in range(256)]
        return Image.frombytes("RGB", size, rng.bytes(w * h * 3)).point(lut)
    raise ValueError(f"unknown background style {style!r}")


def random_style(rng: np.random.Generator) -> str:
    return ("flat", "gradient", "noise")[int(rng.integers(3))]


def luminance(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def contrasting_ink(rng: np.random.Generator, bg: tuple[int, int, int]) -> tuple[int, int, int]:
    """A text colour readable on ``bg``."""
    dark = ((10, 10, 10), (20, 30, 90), (110, 15, 15), (15, 70, 25))
    light = ((250, 250, 250), (255, 235, 120), (200, 235, 255))
    options = dark if luminance(bg) > 120 else light
    return options[int(rng.integers(len(options)))]


@lru_cache(maxsize=1)
def font_dir() -> str:
    """matplotlib's bundled DejaVu fonts. The package is located without importing it
    (importing matplotlib costs seconds); ``get_data_path()`` is the fallback."""
    spec = importlib.util.find_spec("matplotlib")
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(root, "mpl-data", "fonts", "ttf")
        if os.path.isfile(os.path.join(candidate, "DejaVuSans.ttf")):
            return candidate
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


@lru_cache(maxsize=512)
def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(os.path.join(font_dir(), name), max(6, int(size)))

"""Encoding images to bytes with deterministic settings (same pixels -> same bytes)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def choose_format(rng: np.random.Generator) -> tuple[str, int]:
    """Mostly JPEG, some PNG and WEBP; with a quality for the lossy ones."""
    p = rng.random()
    fmt = "jpg" if p < 0.75 else "png" if p < 0.9 else "webp"
    return fmt, int(rng.integers(80, 96))


def encode(img: Image.Image, fmt: str, quality: int = 90, png_level: int = 3) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpg":
        img.convert("RGB").save(buf, "JPEG", quality=quality)
    elif fmt == "png":
        img.save(buf, "PNG", compress_level=png_level)
    elif fmt == "webp":
        img.save(buf, "WEBP", quality=quality, method=2)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buf.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img

"""Duplicates: exact copies (same bytes, or the same pixels re-saved losslessly) and near
duplicates made by one recorded transform."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance

from mindvl.data_engine.synth.encoding import decode, encode

NEAR_TRANSFORMS = ("resize", "recompress", "crop", "color_jitter", "format_change")


@dataclass(frozen=True)
class Duplicate:
    image: bytes
    image_format: str
    width: int
    height: int
    dup_kind: str  # "exact" or "near:<transform>"


def pick_kind(rng: np.random.Generator, category: str) -> str:
    """One third exact copies, the rest a near transform. Grounding skips ``crop``: cropping
    moves the boxes its answers are about."""
    if rng.random() < 1 / 3:
        return "exact"
    options = [t for t in NEAR_TRANSFORMS if not (category == "grounding" and t == "crop")]
    return options[int(rng.integers(len(options)))]


def _factor(rng: np.random.Generator, low: float, high: float) -> float:
    magnitude = float(rng.uniform(low, high))
    return 1 + magnitude if rng.random() < 0.5 else 1 - magnitude


def make_duplicate(rng: np.random.Generator, data: bytes, fmt: str, kind: str) -> Duplicate:
    img = decode(data)
    quality = int(rng.integers(85, 96))
    if kind == "exact":
        if rng.random() < 0.5:
            return Duplicate(data, fmt, img.width, img.height, "exact")
        # Same pixels in a lossless container (PNG -> PNG re-encode, JPEG/WEBP pixels -> PNG).
        return Duplicate(encode(img, "png", png_level=9), "png", img.width, img.height, "exact")
    out_fmt = fmt
    if kind == "resize":
        scale = float(rng.uniform(0.5, 0.9))
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))),
            Image.Resampling.LANCZOS,
        )
    elif kind == "recompress":
        out_fmt, quality = "jpg", int(rng.integers(50, 71))
    elif kind == "crop":
        cl, ct, cr, cb = (float(v) for v in rng.uniform(0.01, 0.05, 4))
        box = (
            round(img.width * cl),
            round(img.height * ct),
            img.width - round(img.width * cr),
            img.height - round(img.height * cb),
        )
        img = img.crop(box)
    elif kind == "color_jitter":
        img = ImageEnhance.Brightness(img.convert("RGB")).enhance(_factor(rng, 0.03, 0.08))
        img = ImageEnhance.Contrast(img).enhance(_factor(rng, 0.03, 0.08))
    elif kind == "format_change":
        # A lossy re-encode into another container (lossless ones count as exact).
        out_fmt = "webp" if fmt == "jpg" else "jpg"
    elif kind == "flatten_alpha":
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
        out_fmt = "jpg"
    else:
        raise ValueError(f"unknown duplicate kind {kind!r}")
    if out_fmt == "jpg" and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    return Duplicate(encode(img, out_fmt, quality), out_fmt, img.width, img.height, f"near:{kind}")

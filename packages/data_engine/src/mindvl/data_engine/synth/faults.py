"""Planted faults: which one a sample gets, and the byte- and text-level damage itself."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

FAULT_CLASSES = (
    "truncated",
    "zero_byte",
    "huge_header",
    "tiny",
    "extreme_aspect",
    "empty_caption",
    "long_caption",
    "non_utf8_caption",
    "non_english_caption",
    "missing_image",
)
HUGE_SIDE = 100_000
# Invalid UTF-8: latin-1 accents (0xE9, 0xF1 not followed by continuation bytes) plus 0xFF.
NON_UTF8_PREFIX = "Café ñ: ".encode("latin-1")
FILLER = (
    "The picture is shown in full detail and every part of it can be seen clearly.",
    "Nothing else of note appears anywhere in the frame apart from what is described.",
    "Colours are flat and the edges are sharp, as in a simple computer drawing.",
    "This sentence repeats to make the description far longer than any useful caption.",
    "A viewer would describe the same content in many different but equivalent ways.",
)


def pick_fault(rng: np.random.Generator, rate: float, fmt: str) -> str | None:
    """With probability ``rate`` one class chosen uniformly; ``missing_image`` becomes
    ``truncated`` for containers that cannot reference an absent file."""
    u, k = rng.random(), int(rng.integers(len(FAULT_CLASSES)))
    if u >= rate:
        return None
    fault = FAULT_CLASSES[k]
    if fault == "missing_image" and fmt in ("webdataset", "parquet"):
        return "truncated"
    return fault


def huge_header_png(rng: np.random.Generator, side: int = HUGE_SIDE) -> bytes:
    """A well-formed PNG (valid CRCs) whose IHDR claims side x side RGB pixels, with a tiny
    IDAT: a decompression-bomb header. The IDAT payload varies so files are not identical."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + rng.bytes(47), 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def shrink_tiny(img: Image.Image) -> Image.Image:
    return img.resize((8, 8), Image.Resampling.BILINEAR)


def stretch_extreme(rng: np.random.Generator, img: Image.Image) -> Image.Image:
    size = (2000, 20) if rng.random() < 0.5 else (20, 2000)
    return img.resize(size, Image.Resampling.BILINEAR)


def long_caption(rng: np.random.Generator, caption: str) -> str:
    target = int(rng.integers(5200, 8000))
    parts = [caption]
    total = len(caption)
    while total <= target:
        sentence = FILLER[int(rng.integers(len(FILLER)))]
        parts.append(sentence)
        total += len(sentence) + 1
    return " ".join(parts)


def non_utf8_bytes(caption: str) -> bytes:
    """Caption bytes that are not valid UTF-8 (the caption itself is ASCII)."""
    return NON_UTF8_PREFIX + caption.encode("ascii", "replace") + b" \xff"


def replacement_garbage(rng: np.random.Generator, caption: str) -> str:
    """For parquet (which stores valid strings only): what a lossy decode leaves behind."""
    words = caption.split()
    out = []
    for word in words:
        out.append(word if rng.random() < 0.35 else "\ufffd" * int(rng.integers(1, 4)))
    return "Caf\ufffd \ufffd: " + " ".join(out) + " \ufffd"

"""The bytes of one image's verification signature, as ``image_decode`` writes them.

``gray (side*side) | b"SX" | width, height (2 x uint32 LE) | Cb 8x8 | Cr 8x8``

- gray: the area-averaged grayscale thumbnail the crop search compares;
- width, height: the decoded image's size, so a match must also explain the two sizes
  (a crop changes the aspect ratio by what it cut; two images of one size are compared
  without a crop);
- Cb/Cr: the area-averaged chroma of the whole picture, which grayscale cannot see (a red
  and a blue shape of one luminance).

Signatures written before this layout are a bare square gray thumbnail (or the 192-byte
8x8 RGB one); they parse with ``size`` and ``chroma`` None and are compared on gray alone.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np

TAIL_MAGIC = b"SX"
CHROMA_SIDE = 8
TAIL_BYTES = len(TAIL_MAGIC) + 8 + 2 * CHROMA_SIDE * CHROMA_SIDE
MIN_GRAY_SIDE = 8


@dataclass(frozen=True)
class ParsedSignature:
    gray: bytes  # square grayscale thumbnail (or the legacy 192-byte RGB one)
    size: tuple[int, int] | None  # (width, height) of the decoded image
    chroma: np.ndarray | None  # (2, 8, 8) float32 Cb, Cr

    @property
    def gray_side(self) -> int | None:
        """Side of a square gray thumbnail of at least 8x8, else None."""
        side = math.isqrt(len(self.gray))
        return side if side * side == len(self.gray) and side >= MIN_GRAY_SIDE else None


def pack_signature(gray: bytes, width: int, height: int, cbcr: bytes) -> bytes:
    """``gray``: side*side bytes; ``cbcr``: the 8x8 Cb plane then the 8x8 Cr plane."""
    if len(cbcr) != 2 * CHROMA_SIDE * CHROMA_SIDE:
        raise ValueError(f"chroma must be 2 x {CHROMA_SIDE}x{CHROMA_SIDE} bytes, got {len(cbcr)}")
    return gray + TAIL_MAGIC + struct.pack("<II", width, height) + cbcr


def _is_square(n: int) -> bool:
    return n > 0 and math.isqrt(n) ** 2 == n


def parse_signature(sig: bytes) -> ParsedSignature:
    """The parts of a signature. A bare square is never read as gray + tail: s*s - 138 is
    never a square (138 has no factorisation into two factors of equal parity)."""
    n = len(sig) - TAIL_BYTES
    if _is_square(n) and sig[n : n + len(TAIL_MAGIC)] == TAIL_MAGIC:
        at = n + len(TAIL_MAGIC)
        width, height = struct.unpack_from("<II", sig, at)
        chroma = np.frombuffer(sig, np.uint8, 2 * CHROMA_SIDE * CHROMA_SIDE, at + 8)
        shape = (2, CHROMA_SIDE, CHROMA_SIDE)
        return ParsedSignature(sig[:n], (width, height), chroma.astype(np.float32).reshape(shape))
    return ParsedSignature(sig, None, None)

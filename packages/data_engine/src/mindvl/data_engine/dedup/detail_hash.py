"""A second 64-bit hash for images whose pHash is shared by too many others.

pHash sees the layout of a picture at 8x8 frequencies. Equations on a light page, mostly
blank documents, flat charts: hundreds of different images have pHashes within the
near-dup distance of each other, one band bucket holds them all, and pairing inside it is
quadratic (on the 20k benchmark corpus one such crowd of ~1,300 images gave 178k of the
197k candidate pairs). Inside such a crowded bucket (``lsh.py``) pairs must also be close in
this hash, which is taken where the images differ:

- the content box thumbnail of the signature when there is one (``content_box.py``):
  "7 - 6 = ?" and "8 - 3 = ?" are a few pixels apart in the whole-picture thumbnail but
  whole strokes apart in their content boxes;
- else the whole gray thumbnail.

The bits are the signs against their median of the 64 lowest-frequency DCT coefficients
after the DC term (zigzag order). The two kinds never pair (``DETAIL_CONTENT`` /
``DETAIL_GRAY``); signatures without a square gray thumbnail (legacy) have none, and in a
crowded bucket they pair only by size (when the signature has one).
Measured on the 20k benchmark corpus (with the BOX thumbnails of then): the 64 planted
near copies inside its crowd that verification accepts are within 8 bits of each other, and
5% of the crowd's pairs are. With the antialiased thumbnails (``signature_format.thumbnail``)
the bound was kept; the corpus's candidate pairs went 63k -> 80k.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.fft import dctn

from mindvl.data_engine.dedup.fingerprint import parse_signature

DETAIL_NONE, DETAIL_CONTENT, DETAIL_GRAY = 0, 1, 2
DETAIL_BITS = 64


@lru_cache(maxsize=4)
def _zigzag(side: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the first 64 DCT coefficients after DC, by frequency u + v."""
    n = min(side, 16)
    cells = sorted(((u, v) for u in range(n) for v in range(n)), key=lambda c: (sum(c), c[0]))
    cells = cells[1 : DETAIL_BITS + 1]
    return np.array([c[0] for c in cells]), np.array([c[1] for c in cells])


def hash_thumbnail(pixels: np.ndarray) -> int:
    """The 64-bit detail hash of one square gray thumbnail (side >= 12)."""
    rows, cols = _zigzag(pixels.shape[0])
    coeffs = dctn(np.asarray(pixels, dtype=np.float64), norm="ortho")[rows, cols]
    bits = coeffs > np.median(coeffs)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def detail_hash(signature: bytes) -> tuple[int, int, int]:
    """(hash, kind, size key) of a signature: kind DETAIL_CONTENT, DETAIL_GRAY or
    DETAIL_NONE (hash 0); size key ``width << 32 | height``, 0 when the size is unknown."""
    parsed = parse_signature(signature)
    size = parsed.size[0] << 32 | parsed.size[1]
    side = parsed.side
    if parsed.content is not None and len(parsed.content) == side * side:
        source, kind = parsed.content, DETAIL_CONTENT
    else:
        source, kind = parsed.gray, DETAIL_GRAY
    pixels = np.frombuffer(source, np.uint8).reshape(side, side)
    return hash_thumbnail(pixels), kind, size


def cached_details(signatures: list[bytes]):
    """``Crowding.detail`` over ``signatures``: each computed once, on first use (only
    members of crowded buckets ever need one)."""
    hashes = np.zeros(len(signatures), dtype=np.uint64)
    kinds = np.full(len(signatures), -1, dtype=np.int8)
    sizes = np.zeros(len(signatures), dtype=np.int64)

    def detail(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        indices = np.asarray(indices, dtype=np.int64)
        for i in np.unique(indices[kinds[indices] < 0]).tolist():
            hashes[i], kinds[i], sizes[i] = detail_hash(signatures[i])
        return hashes[indices], kinds[indices], sizes[indices]

    return detail

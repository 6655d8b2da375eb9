"""64-bit pHash arithmetic shared by the pure-Python core, the Ray stages and the benchmark.

pHashes travel as 16 hex chars; here they become unsigned 64-bit integers (numpy ``uint64``)
so banding is bit shifts and Hamming distance is a popcount. The second signal that
verifies a pHash match is in ``signature.py``, its batch screen in ``screen.py``.
"""

from __future__ import annotations

import numpy as np

HASH_BITS = 64


def phash_to_int(phash: str) -> int:
    return int(phash, 16)


def phashes_to_array(phashes: list[str]) -> np.ndarray:
    return np.array([int(p, 16) for p in phashes], dtype=np.uint64)


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bit differences between 64-bit hashes (vectorised)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64)))


def band_layout(n_bands: int, bits: int = HASH_BITS) -> list[tuple[int, int]]:
    """(shift, width) per band; widths differ by at most one bit and cover all bits."""
    if not 1 <= n_bands <= bits:
        raise ValueError(f"need 1..{bits} bands, got {n_bands}")
    base, extra = divmod(bits, n_bands)
    layout, shift = [], 0
    for i in range(n_bands):
        width = base + (1 if i < extra else 0)
        layout.append((shift, width))
        shift += width
    return layout


def band_values(hashes: np.ndarray, n_bands: int) -> np.ndarray:
    """(n, n_bands) uint64 array: the value of each band of each hash.

    Pigeonhole: split into ``max_hamming + 1`` bands, two hashes at distance <= max_hamming
    agree exactly on at least one band, so exact band matches find every such pair.
    """
    h = np.asarray(hashes, dtype=np.uint64)
    out = np.empty((h.shape[0], n_bands), dtype=np.uint64)
    for i, (shift, width) in enumerate(band_layout(n_bands)):
        out[:, i] = (h >> np.uint64(shift)) & np.uint64((1 << width) - 1)
    return out

"""How 64-bit pHashes are cut into band keys for near-duplicate candidate search.

Two schemes, chosen per recipe (``dedup.near.index``; ``auto``, the default, takes exact
banding while its random collisions stay small, ``exact_collisions``, and for larger builds
narrows the radius, then samples: ``scheme_for``):

- ``exact``: ``max_hamming + 1`` contiguous bands (pigeonhole). Every pair within the
  distance shares a band, so recall is 1. Bands are 64 / (k + 1) bits wide, and unrelated
  hashes collide in a band with probability 2^-width: at k = 6 (9-bit bands) the collision
  work grows as n^2 / 150 and dominates beyond ~1e5 hashes.
- ``sampled``: bit-sampling LSH. ``tables`` random subsets of ``width`` bit positions
  (fixed seed, so the same n always gives the same tables); ``width`` = ceil(log2 n) keeps
  random collisions per table below n / 2, and ``tables`` is the smallest number for which
  a pair at exactly ``max_hamming`` bits is found with probability >= ``recall``
  (closer pairs are found more often). Work grows as n * tables, and tables grows only
  with log n: near-linear, at a stated, measured recall below 1.

A pair is emitted only by the first band its two hashes share, so it comes out once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from math import ceil, comb, log1p, log2

import numpy as np

from mindvl.data_engine.dedup.bits import HASH_BITS, band_layout

KEY_SHIFT = 56  # band keys: band index in the top 8 bits, band value below
MAX_TABLES = 255
SAMPLED_SEED = 0x6D696E64  # fixed: the tables are part of the build's definition
MIN_SAMPLED_WIDTH = 10
# ``index: auto`` uses exact banding up to this many expected random band collisions (each
# a distance check; ~10 s of them): ~54k hashes at max_hamming 10, ~217k at 6.
EXACT_COLLISION_BUDGET = 3e8


def hit_probability(distance: int, width: int, bits: int = HASH_BITS) -> float:
    """Chance that ``width`` random bit positions avoid all ``distance`` differing bits."""
    if distance + width > bits:
        return 0.0
    return comb(bits - distance, width) / comb(bits, width)


@dataclass(frozen=True)
class BandScheme:
    kind: str  # "exact" | "sampled"
    max_hamming: int
    n_bands: int
    width: int = 0  # sampled only: bits per band
    positions: tuple[tuple[int, ...], ...] = field(default=(), repr=False)

    @classmethod
    def exact(cls, max_hamming: int) -> BandScheme:
        return cls("exact", max_hamming, max_hamming + 1)

    @classmethod
    def sampled(cls, max_hamming: int, n: int, recall: float = 0.99) -> BandScheme:
        """Tables for ``n`` hashes so a pair at ``max_hamming`` is found with ``recall``."""
        if not 0 < recall < 1:
            raise ValueError(f"sampled banding needs 0 < recall < 1, got {recall}")
        width = max(MIN_SAMPLED_WIDTH, ceil(log2(max(n, 2))))
        width = min(KEY_SHIFT, HASH_BITS - max_hamming, width)
        p = hit_probability(max_hamming, width)
        tables = ceil(log1p(-recall) / log1p(-p)) if 0 < p < 1 else 1 if p >= 1 else MAX_TABLES
        tables = max(1, min(MAX_TABLES, tables))
        rng = np.random.default_rng(SAMPLED_SEED)
        pos = tuple(
            tuple(sorted(rng.choice(HASH_BITS, width, replace=False).tolist()))
            for _ in range(tables)
        )
        return cls("sampled", max_hamming, tables, width, pos)

    def expected_recall(self, distance: int | None = None) -> float:
        """Probability that a pair at ``distance`` (default: max_hamming) shares a band."""
        d = self.max_hamming if distance is None else distance
        if self.kind == "exact":
            return 1.0 if d <= self.max_hamming else float("nan")
        return 1 - (1 - hit_probability(d, self.width)) ** self.n_bands

    def describe(self) -> str:
        if self.kind == "exact":
            return f"exact: {self.n_bands} bands"
        return (
            f"sampled: {self.n_bands} tables x {self.width} bits, "
            f"recall {self.expected_recall():.3f} at distance {self.max_hamming}"
        )

    @cached_property
    def _luts(self) -> np.ndarray:
        """(n_bands, 8, 256) uint64: the band bits each byte value of each hash byte gives."""
        luts = np.zeros((self.n_bands, 8, 256), dtype=np.uint64)
        v = np.arange(256, dtype=np.uint64)
        for t, pos in enumerate(self.positions):
            for out_bit, p in enumerate(pos):
                byte, bit = divmod(p, 8)
                luts[t, byte] |= ((v >> np.uint64(bit)) & np.uint64(1)) << np.uint64(out_bit)
        return luts

    def band_bits(self, b: int) -> int:
        return band_layout(self.n_bands)[b][1] if self.kind == "exact" else self.width

    def band(self, hashes: np.ndarray, b: int) -> np.ndarray:
        """Value of band ``b`` of every hash (uint64)."""
        h = np.asarray(hashes, dtype=np.uint64)
        if self.kind == "exact":
            shift, width = band_layout(self.n_bands)[b]
            return (h >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        lut = self._luts[b]
        out = lut[0][(h & np.uint64(255)).astype(np.intp)]
        for byte in range(1, 8):
            out |= lut[byte][((h >> np.uint64(8 * byte)) & np.uint64(255)).astype(np.intp)]
        return out

    def values(self, hashes: np.ndarray, upto: int | None = None) -> np.ndarray:
        """(n, upto or n_bands) uint64: bands 0..upto-1 of every hash."""
        h = np.asarray(hashes, dtype=np.uint64)
        m = self.n_bands if upto is None else upto
        out = np.empty((h.shape[0], m), dtype=np.uint64)
        for b in range(m):
            out[:, b] = self.band(h, b)
        return out

    def keys(self, hashes: np.ndarray) -> np.ndarray:
        """(n, n_bands) int64 keys ``band << 56 | value`` (one key space for all bands)."""
        vals = self.values(hashes)
        if self.n_bands == 1 and self.kind == "exact":
            return vals.view(np.int64)  # one 64-bit band: the hash itself
        idx = np.arange(self.n_bands, dtype=np.uint64) << np.uint64(KEY_SHIFT)
        return (vals | idx[None, :]).view(np.int64)

    def band_of_key(self, key: int) -> int:
        return 0 if self.n_bands == 1 else (int(key) >> KEY_SHIFT) & 0xFF


def exact_collisions(n: int, max_hamming: int) -> float:
    """Expected band collisions of ``n`` unrelated hashes under exact banding."""
    return sum(n * (n - 1) / 2 / 2.0**w for _, w in band_layout(max_hamming + 1))


def scheme_for(near, n: int) -> BandScheme:
    """The banding a ``NearRule`` asks for, for ``n`` hashes. ``auto`` is exact banding
    while its random band collisions stay within EXACT_COLLISION_BUDGET; past that the
    radius narrows to ``crop_only_beyond`` (sampled tables for a wide radius are too many:
    133 at 1e5 hashes for k = 10, each a band row with the image's signature in the Ray
    shuffle), exact again while that fits the budget, else sampled."""
    k = near.pair_radius
    if near.index == "sampled":
        return BandScheme.sampled(k, n, near.sampled_recall)
    if near.index == "exact" or exact_collisions(n, k) <= EXACT_COLLISION_BUDGET:
        return BandScheme.exact(k)
    k = min(k, near.crop_only_beyond)
    if exact_collisions(n, k) <= EXACT_COLLISION_BUDGET:
        return BandScheme.exact(k)
    return BandScheme.sampled(k, n, near.sampled_recall)

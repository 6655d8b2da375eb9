"""Near-duplicate candidate pairs from 64-bit hashes by LSH banding, vectorised with numpy.

The banding (``bands.py``) is exact pigeonhole banding by default (recall 1 at Hamming
distance <= k) or bit-sampling LSH (near-linear, recall stated by the scheme). Per band the
band values are sorted and equal runs paired; the true distance is then checked, which
removes every pair above k. A pair that shares several bands is emitted only for the first
band it shares, so each pair comes out once without a global de-duplication. Memory stays
O(n): one band is in memory at a time and pairs are materialised in bounded chunks.

Cost: sorting is O(n log n) per band; band collisions between unrelated hashes grow as
n^2 / 2^width per band, which is what limits exact banding at large n and large k (see
bench/dedup_grouping.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mindvl.data_engine.dedup.bands import BandScheme
from mindvl.data_engine.dedup.bits import hamming

PAIR_CHUNK = 1 << 22  # candidate pairs materialised at once (bounds memory)


@dataclass
class PairResult:
    left: np.ndarray  # int64 indices, left < right
    right: np.ndarray
    distance: np.ndarray  # Hamming distance of each pair
    band_collisions: int  # pairs that shared a band, before the distance check


def _run_pairs(order: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """All index pairs within runs ``order[starts[r]:ends[r]]``, yielded in bounded chunks."""
    run_end = np.repeat(ends, ends - starts)  # end of the run of each sorted position
    counts = run_end - 1 - np.arange(run_end.size)  # partners after each position in its run
    positions = np.flatnonzero(counts > 0)
    if positions.size == 0:
        return
    counts = counts[positions]
    cum = np.cumsum(counts)
    lo = 0
    while lo < positions.size:
        base = cum[lo - 1] if lo else 0
        hi = int(np.searchsorted(cum, base + PAIR_CHUNK, side="right"))
        hi = max(hi, lo + 1)
        pos, cnt = positions[lo:hi], counts[lo:hi]
        first = np.repeat(pos, cnt)
        offset = np.arange(first.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        second = first + 1 + offset
        yield order[first], order[second]
        lo = hi


def _sorted_band(col: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, col[order]) with ties in index order; one plain sort of ``value << i | i``
    when value and index fit in 64 bits (about half the time of a stable argsort)."""
    ib = max(1, int(col.size - 1).bit_length())
    if bits + ib > 64:
        order = np.argsort(col, kind="stable")
        return order, col[order]
    packed = np.sort((col << np.uint64(ib)) | np.arange(col.size, dtype=np.uint64))
    return (packed & np.uint64((1 << ib) - 1)).astype(np.int64), packed >> np.uint64(ib)


def candidate_pairs(
    hashes: np.ndarray, max_hamming: int, scheme: BandScheme | None = None
) -> PairResult:
    """Pairs (i < j) with Hamming(hashes[i], hashes[j]) <= max_hamming that share a band of
    ``scheme`` (default: exact banding, i.e. every such pair), each exactly once."""
    h = np.asarray(hashes, dtype=np.uint64)
    scheme = scheme or BandScheme.exact(max_hamming)
    lefts, rights, dists = [], [], []
    collisions = 0
    for b in range(scheme.n_bands):
        order, sorted_col = _sorted_band(scheme.band(h, b), scheme.band_bits(b))
        cut = np.flatnonzero(sorted_col[1:] != sorted_col[:-1]) + 1
        starts = np.concatenate([[0], cut])
        ends = np.concatenate([cut, [h.size]]) if h.size else starts
        del sorted_col
        for a, c in _run_pairs(order, starts, ends):
            collisions += a.size
            d = hamming(h[a], h[c])
            ok = d <= max_hamming
            a, c, d = a[ok], c[ok], d[ok]
            if b and a.size:  # emitted by an earlier band already?
                first = ~(scheme.values(h[a], b) == scheme.values(h[c], b)).any(axis=1)
                a, c, d = a[first], c[first], d[first]
            lefts.append(np.minimum(a, c))
            rights.append(np.maximum(a, c))
            dists.append(d)
    if not lefts:
        empty = np.zeros(0, dtype=np.int64)
        return PairResult(empty, empty, empty.astype(np.uint8), collisions)
    return PairResult(
        np.concatenate(lefts).astype(np.int64),
        np.concatenate(rights).astype(np.int64),
        np.concatenate(dists),
        collisions,
    )


def brute_force_pairs(hashes: np.ndarray, max_hamming: int) -> set[tuple[int, int]]:
    """Reference for tests: O(n^2) all-pairs distance check."""
    h = np.asarray(hashes, dtype=np.uint64)
    d = hamming(h[:, None], h[None, :])
    i, j = np.nonzero(np.triu(d <= max_hamming, k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))

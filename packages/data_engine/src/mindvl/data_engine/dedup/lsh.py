"""Near-duplicate candidate pairs from 64-bit hashes by LSH banding, vectorised with numpy.

Exact recall at Hamming distance <= k: the hash is split into k + 1 bands (pigeonhole), two
hashes within distance k share at least one band exactly, so sorting the band keys and
pairing equal runs finds every such pair; the true distance is then checked, which removes
every pair above k. A pair that shares several bands is emitted only for the first band it
shares, so each pair comes out once without a global de-duplication.

Cost: sorting is O(n log n) per band; band collisions between unrelated hashes grow as
n^2 / 2^(64/(k+1)) per band, so for large n and large k the collision work, not the sort,
dominates (see bench/dedup_grouping.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mindvl.data_engine.dedup.bits import band_values, hamming

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


def candidate_pairs(hashes: np.ndarray, max_hamming: int) -> PairResult:
    """Every pair (i < j) with Hamming(hashes[i], hashes[j]) <= max_hamming, exactly once."""
    h = np.asarray(hashes, dtype=np.uint64)
    n_bands = max_hamming + 1
    bands = band_values(h, n_bands)
    lefts, rights, dists = [], [], []
    collisions = 0
    for b in range(n_bands):
        col = bands[:, b]
        order = np.argsort(col, kind="stable")
        sorted_col = col[order]
        cut = np.flatnonzero(sorted_col[1:] != sorted_col[:-1]) + 1
        starts = np.concatenate([[0], cut])
        ends = np.concatenate([cut, [h.size]]) if h.size else starts
        for a, c in _run_pairs(order, starts, ends):
            collisions += a.size
            if b:  # emitted by an earlier band already?
                a_bands, c_bands = bands[a, :b], bands[c, :b]
                first = ~(a_bands == c_bands).any(axis=1)
                a, c = a[first], c[first]
            d = hamming(h[a], h[c])
            ok = d <= max_hamming
            a, c, d = a[ok], c[ok], d[ok]
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

"""Near-duplicate candidate pairs from 64-bit hashes by LSH banding, vectorised with numpy.

The banding (``bands.py``) is exact pigeonhole banding by default (recall 1 at Hamming
distance <= k) or bit-sampling LSH (near-linear, recall stated by the scheme). Per band the
band values are sorted and equal runs paired; the true distance is then checked, which
removes every pair above k. A pair that shares several bands is emitted only for the first
band it shares, so each pair comes out once without a global de-duplication. Memory stays
O(n): one band is in memory at a time and pairs are materialised in bounded chunks.

Cost: sorting is O(n log n) per band; band collisions between unrelated hashes grow as
n^2 / 2^width per band, which is what limits exact banding at large n and large k (see
bench/dedup_grouping.py). Images whose pHashes genuinely crowd together (equations on a
page, blank documents) make one bucket quadratic whatever the banding: a bucket with more
than ``Crowding.max_bucket`` members pairs only what is also close in a second hash taken
from the verification signature (``detail_hash.py``), or of one size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mindvl.data_engine.dedup.bands import BandScheme
from mindvl.data_engine.dedup.bits import hamming
from mindvl.data_engine.dedup.detail_hash import DETAIL_NONE, cached_details

PAIR_CHUNK = 1 << 22  # candidate pairs materialised at once (bounds memory)


@dataclass
class PairResult:
    left: np.ndarray  # int64 indices, left < right
    right: np.ndarray
    distance: np.ndarray  # Hamming distance of each pair
    band_collisions: int  # pairs that shared a band, before the distance check
    crowded_buckets: int = 0  # buckets paired by the detail hash (``Crowding``)


def _run_pairs(order: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """All index pairs within runs ``order[starts[r]:ends[r]]``, yielded in bounded chunks."""
    lengths = ends - starts
    run_end = np.repeat(ends, lengths)  # end of the run of each position in a run
    at = np.arange(run_end.size) - np.repeat(np.cumsum(lengths) - lengths - starts, lengths)
    counts = run_end - 1 - at  # partners after each position in its run
    positions = at[counts > 0]
    counts = counts[counts > 0]
    if positions.size == 0:
        return
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


@dataclass(frozen=True)
class Crowding:
    """How crowded band buckets are paired (see ``detail_hash.py``). A bucket is crowded when
    more than m(m-1)/2 of its pairs are within the pHash bound, m = ``max_bucket`` (as many
    as m images all alike). There only images that are also close in the detail hash (of
    one kind, within ``max_hamming`` bits; found by pigeonhole banding of the detail hashes
    inside the bucket) or of exactly one size (when at most ``max_bucket`` members share
    it: re-encodes, colour changes and alpha flattening keep the size, and they move the
    detail hash of thin text most) are paired. ``detail(indices)`` gives the (uint64
    hashes, int8 kinds, int64 size keys; 0 = unknown) of the images at ``indices``."""

    max_bucket: int
    max_hamming: int
    detail: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _crowding(near, detail) -> Crowding | None:
    """A ``NearDedupSpec``'s rule for crowded buckets (verification only), ``detail`` as
    ``Crowding.detail``."""
    if not (near.verify and near.crowded_bucket):
        return None
    return Crowding(near.crowded_bucket, near.detail_max_hamming, detail)


def crowding_for(near, signatures: list[bytes]) -> Crowding | None:
    """The crowding rule over these signatures (each detail hash computed on first use)."""
    return _crowding(near, cached_details(signatures))


def crowding_of_details(
    near, hashes: np.ndarray, kinds: np.ndarray, sizes: np.ndarray
) -> Crowding | None:
    """:func:`crowding_for` with every member's ``detail_hash`` computed already (the Ray
    band rows carry them instead of the signatures)."""
    hashes, kinds, sizes = (np.asarray(x) for x in (hashes, kinds, sizes))
    return _crowding(near, lambda at: (hashes[at], kinds[at], sizes[at]))


def _filtered(a, c, h, band, scheme, max_hamming, count_all=False):
    """Pairs within the pHash bound that share no earlier band than ``band``, as (a, c, d)
    (and, with ``count_all``, how many were within the bound before the band check)."""
    d = hamming(h[a], h[c])
    ok = d <= max_hamming
    a, c, d = a[ok], c[ok], d[ok]
    within = a.size
    if band and a.size:  # emitted by an earlier band already?
        first = ~(scheme.values(h[a], band) == scheme.values(h[c], band)).any(axis=1)
        a, c, d = a[first], c[first], d[first]
    return (a, c, d, within) if count_all else (a, c, d)


def _run_bounds(n: int, *sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of equal keys in sorted key arrays of length n."""
    change = np.zeros(max(n - 1, 0), dtype=bool)
    for k in sorted_keys:
        change |= k[1:] != k[:-1]
    cut = np.flatnonzero(change) + 1
    starts = np.concatenate([[0], cut]).astype(np.int64)
    ends = np.concatenate([cut, [n]]).astype(np.int64) if n else starts
    return starts, ends


def crowd_pairs(
    h: np.ndarray, members: np.ndarray, band: int, scheme: BandScheme, crowding: Crowding
):
    """Pairs of one crowded bucket (``members``: indices into ``h``) within the pHash bound
    and close in detail or of one size, each once, as (a, c, d) chunks."""
    detail, kinds, sizes = (np.asarray(x) for x in crowding.detail(members))
    detail = detail.astype(np.uint64)
    bound = crowding.max_hamming
    sub = BandScheme.exact(bound)

    def close(x, y):
        return (
            (kinds[x] == kinds[y])
            & (kinds[x] != DETAIL_NONE)
            & (hamming(detail[x], detail[y]) <= bound)
        )

    has = np.flatnonzero(kinds != DETAIL_NONE)
    for db in range(sub.n_bands):
        vals = sub.band(detail[has], db)
        by_key = np.lexsort((vals, kinds[has]))
        order = has[by_key]
        starts, ends = _run_bounds(order.size, kinds[order], vals[by_key])
        for x, y in _run_pairs(order, starts, ends):
            ok = close(x, y)
            if db:
                ok &= ~(sub.values(detail[x], db) == sub.values(detail[y], db)).any(axis=1)
            yield _filtered(members[x[ok]], members[y[ok]], h, band, scheme, scheme.max_hamming)
    known = np.flatnonzero(sizes != 0)
    order = known[np.argsort(sizes[known], kind="stable")]
    starts, ends = _run_bounds(order.size, sizes[order])
    small = (ends - starts) <= crowding.max_bucket
    for x, y in _run_pairs(order, starts[small], ends[small]):
        ok = ~close(x, y)  # the detail bands emitted those already
        yield _filtered(members[x[ok]], members[y[ok]], h, band, scheme, scheme.max_hamming)


def bucket_pairs(
    h: np.ndarray,
    members: np.ndarray,
    band: int,
    scheme: BandScheme,
    crowding: Crowding | None = None,
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], bool]:
    """The pairs of one band bucket (``members``: indices into ``h``) as ``candidate_pairs``
    emits them, in (a, c, d) chunks, and whether the bucket was crowded: more than
    m(m-1)/2 of its pairs within the pHash bound, m = ``crowding.max_bucket`` (as many as
    m mutually alike images). Counting stops as soon as that is exceeded, so a crowd costs
    one chunk of distances before ``crowd_pairs`` takes over; a big bucket of unrelated
    hashes (large builds, narrow bands) is not crowded by its size alone."""
    members = np.asarray(members, dtype=np.int64)
    m = crowding.max_bucket if crowding is not None else 0
    limit = m * (m - 1) // 2 if m else None
    out, within = [], 0
    for a, c in _run_pairs(members, np.array([0]), np.array([members.size])):
        found = _filtered(a, c, h, band, scheme, scheme.max_hamming, count_all=True)
        within += found[3]
        if limit is not None and within > limit:
            return list(crowd_pairs(h, members, band, scheme, crowding)), True
        out.append(found[:3])
    return out, False


def candidate_pairs(
    hashes: np.ndarray,
    max_hamming: int,
    scheme: BandScheme | None = None,
    crowding: Crowding | None = None,
) -> PairResult:
    """Pairs (i < j) with Hamming(hashes[i], hashes[j]) <= max_hamming that share a band of
    ``scheme`` (default: exact banding, i.e. every such pair), each exactly once; in buckets
    crowded by ``crowding``'s rule only the pairs also close in the detail hash or of one
    size (``bucket_pairs``)."""
    h = np.asarray(hashes, dtype=np.uint64)
    scheme = scheme or BandScheme.exact(max_hamming)
    lefts, rights, dists = [], [], []
    collisions = crowded = 0
    for b in range(scheme.n_bands):
        order, sorted_col = _sorted_band(scheme.band(h, b), scheme.band_bits(b))
        starts, ends = _run_bounds(h.size, sorted_col)
        del sorted_col
        chunks = []
        if crowding is not None and crowding.max_bucket:
            big = (ends - starts) > crowding.max_bucket
            for s, e in zip(starts[big].tolist(), ends[big].tolist(), strict=True):
                collisions += (e - s) * (e - s - 1) // 2
                found, was_crowded = bucket_pairs(h, order[s:e], b, scheme, crowding)
                crowded += was_crowded
                chunks.append(found)
            starts, ends = starts[~big], ends[~big]
        for a, c in _run_pairs(order, starts, ends):
            collisions += a.size
            chunks.append([_filtered(a, c, h, b, scheme, max_hamming)])
        for chunk in chunks:
            for a, c, d in chunk:
                lefts.append(np.minimum(a, c))
                rights.append(np.maximum(a, c))
                dists.append(d)
    if not lefts:
        empty = np.zeros(0, dtype=np.int64)
        return PairResult(empty, empty, empty.astype(np.uint8), collisions, crowded)
    return PairResult(
        np.concatenate(lefts).astype(np.int64),
        np.concatenate(rights).astype(np.int64),
        np.concatenate(dists),
        collisions,
        crowded,
    )

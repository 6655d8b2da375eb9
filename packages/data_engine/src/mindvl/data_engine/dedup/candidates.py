"""Step 3 of dedup: candidate pairs, the images whose pHashes are close enough to compare.

Banding (``BandScheme``, chosen by ``scheme_for``): ``exact``, ``max_hamming + 1`` contiguous
bands (pigeonhole: recall 1, work ~ n^2 / 2^width), or ``sampled``, bit-sampling LSH with
the fewest random tables of ceil(log2 n) bits that find a pair at ``max_hamming`` with
probability ``sampled_recall`` (near-linear). The keys of one band value (a bucket: one
group of the runners' group-by) are paired, the true distance checked, and a pair emitted
by the first band its hashes share only, in bounded chunks (``bucket_pairs``). A crowded
bucket (more than m(m-1)/2 close pairs, m = ``crowded_bucket``: equations, blank pages;
``icon_crowded_bucket`` for a bucket of icon keys) pairs only images also close in
``detail_hash`` or of one size (``crowd_pairs``). The keys: each image's pHash, trimmed
pHash, crop pHashes and, for an icon, its content and canvas keys, the canvas on black
too for a transparent one (``candidate_keys``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from math import ceil, comb, log1p, log2

import numpy as np
from scipy.fft import dctn

from mindvl.data_engine.dedup.fingerprint import icon_keys, parse_signature
from mindvl.data_engine.dedup.rule import NearRule

HASH_BITS = 64


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Bit differences between 64-bit hashes (vectorised)."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64)))


@lru_cache(maxsize=64)
def band_layout(n_bands: int) -> list[tuple[int, int]]:
    """(shift, width) per band; widths differ by at most one bit and cover all bits."""
    if not 1 <= n_bands <= HASH_BITS:
        raise ValueError(f"need 1..{HASH_BITS} bands, got {n_bands}")
    return [(int(bits[0]), bits.size) for bits in np.array_split(np.arange(HASH_BITS), n_bands)]


KEY_SHIFT = 56  # band keys: band index in the top 8 bits, band value below
MAX_TABLES = 255
SAMPLED_SEED = 0x6D696E64  # fixed: the tables are part of the build's definition
MIN_SAMPLED_WIDTH = 10
# ``index: auto`` uses exact banding up to this many expected random band collisions (each
# a distance check; ~10 s of them): ~54k hashes at max_hamming 10, ~217k at 6.
EXACT_COLLISION_BUDGET = 3e8


def hit_probability(distance: int, width: int) -> float:
    """Chance that ``width`` random bit positions avoid all ``distance`` differing bits."""
    if distance + width > HASH_BITS:
        return 0.0
    return comb(HASH_BITS - distance, width) / comb(HASH_BITS, width)


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

    def expected_recall(self) -> float:
        """Probability that a pair at distance ``max_hamming`` shares a band."""
        if self.kind == "exact":
            return 1.0
        return 1 - (1 - hit_probability(self.max_hamming, self.width)) ** self.n_bands

    def describe(self) -> str:
        if self.kind == "exact":
            return f"exact: {self.n_bands} bands"
        return (
            f"sampled: {self.n_bands} tables x {self.width} bits, "
            f"recall {self.expected_recall():.3f} at distance {self.max_hamming}"
        )

    def band(self, hashes: np.ndarray, b: int) -> np.ndarray:
        """Value of band ``b`` of every hash (uint64)."""
        h = np.asarray(hashes, dtype=np.uint64)
        if self.kind == "exact":
            shift, width = band_layout(self.n_bands)[b]
            return (h >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        pos = np.array(self.positions[b], dtype=np.uint64)  # sampled: these bits, in order
        bits = (h[..., None] >> pos) & np.uint64(1)
        return (bits << np.arange(pos.size, dtype=np.uint64)).sum(-1, dtype=np.uint64)

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

    def bands_of_keys(self, keys: np.ndarray) -> np.ndarray:
        """The band of each key (``keys``)."""
        if self.n_bands == 1:
            return np.zeros(np.shape(keys), dtype=np.int64)
        return ((np.asarray(keys).view(np.uint64) >> np.uint64(KEY_SHIFT)) & 0xFF).astype(np.int64)


def exact_collisions(n: int, max_hamming: int) -> float:
    """Expected band collisions of ``n`` unrelated hashes under exact banding."""
    return sum(n * (n - 1) / 2 / 2.0**w for _, w in band_layout(max_hamming + 1))


def scheme_for(near: NearRule, n: int) -> BandScheme:
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


DETAIL_CONTENT, DETAIL_GRAY = 1, 2  # kinds of detail hash: they never pair across kinds
DETAIL_BITS = 64


@lru_cache(maxsize=4)
def _zigzag(side: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the first 64 DCT coefficients after DC, by frequency u + v."""
    n = min(side, 16)
    cells = sorted(((u, v) for u in range(n) for v in range(n)), key=lambda c: (sum(c), c[0]))
    cells = cells[1 : DETAIL_BITS + 1]
    return np.array([c[0] for c in cells]), np.array([c[1] for c in cells])


def hash_thumbnail(pixels: np.ndarray) -> int:
    """The 64-bit detail hash of one square gray thumbnail (side >= 12): the signs against
    their median of the 64 lowest-frequency DCT coefficients after DC (zigzag order)."""
    rows, cols = _zigzag(pixels.shape[0])
    coeffs = dctn(np.asarray(pixels, dtype=np.float64), norm="ortho")[rows, cols]
    bits = coeffs > np.median(coeffs)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def detail_hash(signature: bytes) -> tuple[int, int, int]:
    """(hash, kind, size key) of a signature: the hash of its content box thumbnail
    (DETAIL_CONTENT) or else of its gray thumbnail (DETAIL_GRAY); size key
    ``width << 32 | height``."""
    parsed = parse_signature(signature)
    size = parsed.size[0] << 32 | parsed.size[1]
    side = parsed.side
    if parsed.content is not None and len(parsed.content) == side * side:
        source, kind = parsed.content, DETAIL_CONTENT
    else:
        source, kind = parsed.gray, DETAIL_GRAY
    pixels = np.frombuffer(source, np.uint8).reshape(side, side)
    return hash_thumbnail(pixels), kind, size


PAIR_CHUNK = 1 << 22  # candidate pairs materialised at once (bounds memory)


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


LONG_RUN = 256  # runs longer than this are compared block by block (no index pairs first)


def _close_pairs(keys: np.ndarray, starts: np.ndarray, ends: np.ndarray, radius: int):
    """The index pairs (a, c), a < c, within each run ``keys[starts[r]:ends[r]]`` whose keys
    are within ``radius`` bits, in bounded chunks. A long run (a bucket of exact banding on
    a large build) is compared as blocks of rows against the rest of the run, so only the
    close pairs get indices."""
    h = np.asarray(keys, dtype=np.uint64)
    long = ends - starts > LONG_RUN
    for a, c in _run_pairs(np.arange(h.size), starts[~long], ends[~long]):
        yield _within(a, c, h, radius)
    for s, e in zip(starts[long].tolist(), ends[long].tolist(), strict=True):
        step = max(1, PAIR_CHUNK // (e - s))
        for r0 in range(s, e - 1, step):
            r1 = min(r0 + step, e - 1)  # rows r0..r1-1 against keys r0+1..e-1
            close = np.bitwise_count(h[r0:r1, None] ^ h[None, r0 + 1 : e]) <= radius
            close &= np.arange(e - r0 - 1)[None, :] >= np.arange(r1 - r0)[:, None]
            i, j = np.nonzero(close)
            yield r0 + i, r0 + 1 + j


def _within(a, c, h, max_hamming):
    """The key pairs (a, c) within the pHash bound."""
    ok = hamming(h[a], h[c]) <= max_hamming
    return a[ok], c[ok]


def _first_in(band, scheme, h, a, c) -> np.ndarray:
    """Per key pair (a, c) found in ``band`` (one for all, or one per pair): it shares no
    earlier band (it is emitted there)."""
    band, first = np.broadcast_to(band, a.shape), np.ones(a.size, dtype=bool)
    for b in np.unique(band[band > 0]).tolist():
        at = np.flatnonzero(band == b)
        first[at] = ~(scheme.values(h[a[at]], b) == scheme.values(h[c[at]], b)).any(axis=1)
    return first


def run_bounds(n: int, *sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of equal keys in sorted key arrays of length n."""
    change = np.zeros(max(n - 1, 0), dtype=bool)
    for k in sorted_keys:
        change |= k[1:] != k[:-1]
    cut = np.flatnonzero(change) + 1
    starts = np.concatenate([[0], cut]).astype(np.int64)
    ends = np.concatenate([cut, [n]]).astype(np.int64) if n else starts
    return starts, ends


def crowd_pairs(h: np.ndarray, band: int, scheme: BandScheme, rule: NearRule, details):
    """Pairs of one crowded bucket (``h``: the hashes of its members) within the pHash bound
    that are also close in the detail hash (of one kind, within ``detail_max_hamming`` bits;
    found by pigeonhole banding of the detail hashes) or of exactly one size (when at most
    ``crowded_bucket`` members share it: re-encodes, colour changes and alpha flattening
    keep the size, and they move the detail hash of thin text most), each once, as
    (a, c) key-pair chunks; ``details``: the members' (uint64 detail hashes, int8 kinds, int64
    size keys), as ``detail_hash`` gives them."""
    detail, kinds, sizes = (np.asarray(x) for x in details)
    detail = detail.astype(np.uint64)
    bound = rule.detail_max_hamming
    sub = BandScheme.exact(bound)

    def close(x, y):
        return (kinds[x] == kinds[y]) & (hamming(detail[x], detail[y]) <= bound)

    def emitted(x, y):
        x, y = _within(x, y, h, scheme.max_hamming)
        first = _first_in(band, scheme, h, x, y)
        return x[first], y[first]

    for db in range(sub.n_bands):
        vals = sub.band(detail, db)
        order = np.lexsort((vals, kinds))
        starts, ends = run_bounds(order.size, kinds[order], vals[order])
        for x, y in _close_pairs(detail[order], starts, ends, bound):  # runs: one kind
            x, y = order[x], order[y]
            if db:
                ok = ~(sub.values(detail[x], db) == sub.values(detail[y], db)).any(axis=1)
                x, y = x[ok], y[ok]
            yield emitted(x, y)
    order = np.argsort(sizes, kind="stable")
    starts, ends = run_bounds(order.size, sizes[order])
    small = (ends - starts) <= rule.crowded_bucket
    for x, y in _run_pairs(order, starts[small], ends[small]):
        ok = ~close(x, y)  # the detail bands emitted those already
        yield emitted(x[ok], y[ok])


def bucket_pairs(
    keys: np.ndarray,
    owner: np.ndarray,
    own: np.ndarray,
    kind: np.ndarray,
    band: int,
    scheme: BandScheme,
    rule: NearRule,
    details,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """The image pairs of one band bucket, from its keys (``candidate_keys``: the ``keys``,
    the image of each, ``owner``, and its ``kind``; ``own``: each image's own pHash) within
    the pHash bound that share no earlier band: (i, j, d, crowded), i < j image indices,
    d the pHash distance the rule judges them at (``judged_distance``: a pair found by a
    trimmed or crop key and far in the pHash must have the sizes of a crop), and whether
    the bucket was crowded (with verification only): more than m(m-1)/2 pairs within the
    bound, m = ``rule.crowded_bucket`` (as many as m mutually alike images: equations, blank
    pages), counting only key pairs that become image pairs, but two crop keys'. Counting
    stops as soon as that is exceeded, so a crowd costs one chunk of distances before
    ``crowd_pairs`` (``details``: its argument) takes over; a big bucket of unrelated hashes
    (large builds, narrow bands) is not crowded by its size alone."""
    m = rule.crowded_bucket if rule.verify else 0
    if m and kind.size and np.isin(kind, ICON_KINDS).all():
        m = rule.icon_crowded_bucket

    def images(a, c):
        return _image_pairs(a, c, owner, own, kind, keys, rule, scheme.max_hamming)

    pairs, within, crowded = [], 0, False
    whole = np.array([0]), np.array([keys.size])
    for counted, emitted, i, j, d in _key_chunks(
        keys, owner, own, kind, band, *whole, scheme, rule
    ):
        within += int(counted.sum())
        if m and within > m * (m - 1) // 2:
            pairs = [images(x, y) for x, y in crowd_pairs(keys, band, scheme, rule, details)]
            crowded = True
            break
        pairs.append((emitted, i, j, d))
    if not pairs:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, crowded
    keep, i, j, d = (np.concatenate(x) for x in zip(*pairs, strict=True))
    return np.minimum(i, j)[keep], np.maximum(i, j)[keep], d[keep], crowded


def runs_pairs(keys, owner, own, kind, band, starts, ends, scheme: BandScheme, rule: NearRule):
    """The image pairs of many buckets at once, each the rows ``starts[r]:ends[r]`` of the
    arguments of ``bucket_pairs`` (``band``: each row's), as it gives them for a bucket
    that is not crowded: (i, j, d) chunks. For buckets that cannot be crowded (within
    ``rule.crowded_bucket`` rows, or no crowding), vectorised across them."""
    for _, emitted, i, j, d in _key_chunks(
        keys, owner, own, kind, band, starts, ends, scheme, rule
    ):
        yield np.minimum(i, j)[emitted], np.maximum(i, j)[emitted], d[emitted]


def _key_chunks(keys, owner, own, kind, band, starts, ends, scheme: BandScheme, rule: NearRule):
    """Per chunk of the key pairs of the runs ``starts[r]:ends[r]`` within the pHash bound:
    (counted, emitted, i, j, d): the key pairs that become image pairs (``_image_pairs``)
    but two crop keys' (what crowding counts: a crop's many cuts of alike pictures do not
    make a bucket crowded), those that become image pairs found in no earlier band than
    their own (``band``: the bucket's, or each row's), their images and the pHash distance
    the rule judges them at."""
    radius = scheme.max_hamming
    kind = np.asarray(kind)
    for a, c in _close_pairs(keys, starts, ends, radius):
        pairable, i, j, d = _image_pairs(a, c, owner, own, kind, keys, rule, radius)
        found_in = band[a] if np.ndim(band) else band
        crops = (kind[a] == KEY_CROP) & (kind[c] == KEY_CROP)
        yield pairable & ~crops, pairable & _first_in(found_in, scheme, keys, a, c), i, j, d


KEY_OWN, KEY_TRIM, KEY_CROP, KEY_ICON, KEY_CANVAS, KEY_BLACK = range(6)  # ``candidate_keys``
ICON_KINDS = (KEY_ICON, KEY_CANVAS, KEY_BLACK)  # an icon's keys: each pairs with its kind only
# set in the band keys of each kind of an icon's keys: buckets apart from the others'
KIND_BUCKETS = {
    KEY_ICON: np.int64(1 << (KEY_SHIFT - 1)),
    KEY_CANVAS: np.int64(1 << (KEY_SHIFT - 2)),
    KEY_BLACK: np.int64(1 << (KEY_SHIFT - 3)),
}


def candidate_keys(phashes, sigs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The keys n images are banded by: every pHash, then each trimmed pHash that differs
    from its image's pHash, then the crop pHashes (``fingerprint.crop_keys``) of each
    signature (``sigs``: bytes, or b"" for none), then the icons' content, canvas and
    canvas-on-black keys (``fingerprint.icon_keys``); as (uint64 keys, the image index of
    each key, its kind: KEY_OWN, KEY_TRIM, KEY_CROP, KEY_ICON, KEY_CANVAS or KEY_BLACK).
    A pair of images can come out once per pair of their keys within the bound
    (``bucket_pairs`` drops an image's own and crop key pairs)."""
    phashes = np.asarray(phashes, dtype=np.uint64)
    parsed = [parse_signature(s) if s else None for s in sigs]
    trim = np.array([p.trim_phash or 0 if p else 0 for p in parsed], dtype=np.uint64)
    extra = np.flatnonzero((trim != 0) & (trim != phashes))
    crops = [(i, k) for i, p in enumerate(parsed) if p for k in dict.fromkeys(p.crops)
             if k != phashes[i]]  # fmt: skip
    both = [(i, icon_keys(p)) for i, p in enumerate(parsed) if p and p.native_part is not None]
    found = (crops, *([(i, k[n]) for i, k in both if k[n]] for n in (0, 1, 2)))
    owner = np.concatenate([np.arange(phashes.size), extra, *([i for i, _ in x] for x in found)])
    more = [np.array([k for _, k in x], np.uint64) for x in found]
    keys = np.concatenate([phashes, trim[extra], *more])
    counts = [phashes.size, extra.size, *map(len, found)]
    kind = np.repeat([KEY_OWN, KEY_TRIM, KEY_CROP, KEY_ICON, KEY_CANVAS, KEY_BLACK], counts)
    return keys, owner.astype(np.int64), kind.astype(np.int8)


def band_keys(scheme: BandScheme, keys: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """``scheme.keys`` of candidate keys, each kind of an icon's keys in buckets of its own,
    apart from the others (sharing the pHash buckets, icons' keys crowd them)."""
    out = scheme.keys(keys)
    for k, bit in KIND_BUCKETS.items():
        out[np.asarray(kind) == k] |= bit
    return out


def keys_pair(ka, kc, distance, rule: NearRule):
    """Whether two candidate keys of kinds ``ka``, ``kc`` (of two images) at ``distance``
    (bits between the keys) make a candidate pair: a crop key pairs with the other image's
    own pHash within ``rule.crop_radius`` and with its crop keys within
    ``rule.crop_to_crop_radius``, not with its trimmed pHash; an icon's key only with a key
    of its kind, a content key within ``rule.icon_key_max_hamming``, a canvas key (on
    white or on black) within ``rule.canvas_key_max_hamming``, and only when pairs are
    compared."""
    ka, kc, distance = np.asarray(ka), np.asarray(kc), np.asarray(distance)
    crop = (ka == KEY_CROP) | (kc == KEY_CROP)
    ok = ~crop | (((ka == KEY_OWN) | (kc == KEY_OWN)) & (distance <= rule.crop_radius))
    ok |= (ka == KEY_CROP) & (kc == KEY_CROP) & (distance <= rule.crop_to_crop_radius)
    radius = np.where(ka == KEY_ICON, rule.icon_key_max_hamming, rule.canvas_key_max_hamming)
    icons = (ka == kc) & (distance <= radius)
    return np.where(np.isin(ka, ICON_KINDS) | np.isin(kc, ICON_KINDS), icons & rule.verify, ok)


def judged_distance(ka, kc, distance, rule: NearRule):
    """The pHash distance the rule judges a pair found by keys of kinds ``ka``, ``kc`` at
    (``distance``: the images' own pHashes'): that, but a pair of icon content keys at most
    the icons' far-pair bound (their contents agree; an icon's pHash is no measure of
    that). A pair of canvas keys (either ground) keeps its distance: far, it must be a
    resize found pixel for pixel or have a crop's sizes (``compare.first_failing_check``)."""
    icons = (np.asarray(ka) == KEY_ICON) & (np.asarray(kc) == KEY_ICON)
    return np.where(icons, np.minimum(distance, rule.crop_only_beyond_for(True)), distance)


def pair_distance(a: tuple, b: tuple, rule: NearRule) -> int | None:
    """The least pHash distance the rule judges two images at (``judged_distance``) over
    the pairs of their candidate keys that make a candidate pair within ``rule.pair_radius``
    (``keys_pair``: the pairs exact banding finds), or None when none does; ``a``, ``b``:
    each image's (own pHash, its keys, their kinds), as ``candidate_keys`` gives them."""
    (own_a, keys_a, kind_a), (own_b, keys_b, kind_b) = a, b
    d = hamming(np.asarray(keys_a)[:, None], np.asarray(keys_b)[None, :])
    ka, kb = np.broadcast_arrays(np.asarray(kind_a)[:, None], np.asarray(kind_b)[None, :])
    ok = (d <= rule.pair_radius) & keys_pair(ka, kb, d, rule)
    if not ok.any():
        return None
    return int(judged_distance(ka[ok], kb[ok], hamming(own_a, own_b), rule).min())


def _image_pairs(a, c, owner, phashes, kind, keys, rule: NearRule, radius: int):
    """Key pairs (a, c) as pairs of their images: (kept, image of a, image of c, the pHash
    distance the rule judges them at). Left out: a key paired with another key of its
    image, key pairs that ``keys_pair`` refuses, and crop and icon key pairs between images
    whose own pHashes are within ``radius`` (the banding's: found by those)."""
    kind, keys = np.asarray(kind), np.asarray(keys, dtype=np.uint64)
    ka, kc = kind[a], kind[c]
    keep = keys_pair(ka, kc, hamming(keys[a], keys[c]), rule)
    a, c = np.asarray(owner)[a], np.asarray(owner)[c]
    d = hamming(np.asarray(phashes, dtype=np.uint64)[a], np.asarray(phashes, dtype=np.uint64)[c])
    extra = np.isin(ka, (KEY_CROP, *ICON_KINDS)) | np.isin(kc, (KEY_CROP, *ICON_KINDS))
    keep &= (a != c) & (~extra | (d > radius))
    return keep, a, c, judged_distance(ka, kc, d, rule)

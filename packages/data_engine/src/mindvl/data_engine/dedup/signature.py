"""Verification of a pHash match by a second, independent signal: the 48x48 grayscale
signatures ``image_decode`` stores, compared after a small crop search.

``thumbnails_agree`` decides one pair; ``PairVerifier`` decides many pairs over the same
images with the same answers (per-image terms cached); ``star_members`` splits a component
of verified pairs into stars around survivors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Mean absolute difference (0..255 scale) between two legacy 8x8 RGB thumbnails (192 bytes)
# above which a pHash match is rejected (rows written before the grayscale signature).
VERIFY_MAX_MEAN_ABS_DIFF = 22.0
SMALL_SIGNATURE_BYTES = 192
# Square grayscale signatures (image_decode writes 48x48): both thumbnails are blurred
# (sigma ~1 px at 32x32, so sub-pixel resampling of thin strokes does not count),
# brightness/contrast-normalised, aligned by the best of a small crop search, and the
# 99th percentile of the per-pixel z-difference must stay below this. Tuned on the corpus
# kit (400 per category, faults 0.3, k=6): seed 11 near recall 0.946 at precision 0.993,
# seed 23 0.922 at 1.000 (0.930 before the peak rule below), seed 5 0.908 at 1.000
# (tests/data_engine/test_dedup_corpus.py). Closest hard negatives: same-shape icons at
# the same relative position ~0.42, near-blank documents ~0.54.
VERIFY_MAX_P99_Z_DIFF = 0.5
# ... and at that best crop no pixel may differ by more than this. The 99th percentile
# ignores the 21 most different of 2116 pixels, which is where a single changed glyph or
# bar lives ("10 - 4 = ?" vs "10 - 5 = ?"): on the 20k benchmark corpus 60% of the wrong
# near drops had a pixel above 1.0 at their best crop, against 0.5% of the right ones.
VERIFY_MAX_PEAK_Z_DIFF = 1.0
# Crop search: "b is a crop of a" (and vice versa) per axis, scale s = 1 / kept fraction,
# crop anchored left .. right. A pure shift at s = 1 is not a crop (the content must also
# be rescaled), which keeps same-size shapes at clearly different positions apart.
# Coarse grid over both axes first, then each axis refined on the fine grid with the other
# held at its best (cheap coordinate descent instead of the full fine product).
CROP_SCALES = (1.0, 1.04, 1.08, 1.12)
CROP_ANCHORS = (0.0, 0.5, 1.0)
FINE_SCALES = (1.0, 1.02, 1.04, 1.06, 1.08, 1.10, 1.12)
FINE_ANCHORS = (0.0, 0.25, 0.5, 0.75, 1.0)
BLUR_SIGMA_AT_32 = 0.7
# Pre-screen: pairs whose half-resolution distance exceeds this are rejected without the
# full search. Measured on the corpus kit (400 per category, faults 0.3, k=6 candidates):
# the largest half-resolution distance of a pair the full search accepts was 0.74 / 0.97 /
# 0.92 (seeds 11 / 23 / 5); above 1.2 the screen removes 73% / 64% / 54% of the pairs the
# full search rejects, at ~1/6 of the cost each, and changed no decision there (nor in
# bench/data_engine.py at 2k and 20k images: identical dedup counts).
PRESCREEN_MAX = 1.2
PRESCREEN_MIN_SIDE = 16
Z_EPS = 4.0  # added to the std: flat thumbnails stay flat instead of amplifying noise
BORDER = 1  # edge pixels left out (clamped resampling there)


def signature_array(signature: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(signature), dtype=np.uint8)


def _axis_resamplers(n: int, scales: tuple, anchors: tuple) -> np.ndarray:
    """(m, n, n) bilinear matrices for one axis: ``M @ x`` is the crop [x0, x0 + n/s] of x
    (x0 = anchor * (n - n/s)) resized back to n pixels."""
    i = np.arange(n) + 0.5
    rows = np.arange(n)
    mats = []
    for s in scales:
        for anchor in (0.5,) if s == 1.0 else anchors:
            u = np.clip(anchor * (1 - 1 / s) * n + i / s - 0.5, 0, n - 1)
            lo = np.floor(u).astype(int)
            hi = np.minimum(lo + 1, n - 1)
            m = np.zeros((n, n))
            m[rows, lo] += 1 - (u - lo)
            m[rows, hi] += u - lo
            mats.append(m)
    return np.stack(mats)


def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) row-normalised Gaussian blur with edge renormalisation."""
    d = np.arange(n)[:, None] - np.arange(n)[None, :]
    g = np.exp(-0.5 * (d / sigma) ** 2)
    return g / g.sum(1, keepdims=True)


@lru_cache(maxsize=8)
def search_operators(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per side n: crop-and-blur operators on the fine grid (m, n, n), the indices of the
    coarse grid among them, and the plain blur (n, n)."""
    blur = _blur_matrix(n, BLUR_SIGMA_AT_32 * n / 32)
    crops = blur[None] @ _axis_resamplers(n, FINE_SCALES, FINE_ANCHORS)
    combos = [(s, a) for s in FINE_SCALES for a in ((0.5,) if s == 1.0 else FINE_ANCHORS)]
    coarse = [
        i for i, (s, a) in enumerate(combos) if s in CROP_SCALES and (s == 1.0 or a in CROP_ANCHORS)
    ]
    return crops.astype(np.float32), np.array(coarse), blur.astype(np.float32)


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + Z_EPS)


def p99(diff: np.ndarray) -> np.ndarray:
    """Row-wise 99th percentile (the same order statistic the threshold was tuned on)."""
    k = int(0.99 * (diff.shape[-1] - 1))
    return np.partition(diff, k, axis=-1)[..., k]


def _scores(
    rows: np.ndarray, cols: np.ndarray, target: np.ndarray, inner: slice
) -> tuple[np.ndarray, np.ndarray]:
    """(len(rows), len(cols)) robust differences, 99th percentile of |z(warp) - z(target)|,
    and the largest |z(warp) - z(target)| of each warp."""
    warped = (rows[:, None] @ cols.transpose(0, 2, 1)[None])[:, :, inner, inner]
    diff = np.abs(zscore(warped.reshape(-1, target.size)) - target)
    shape = (rows.shape[0], cols.shape[0])
    return p99(diff).reshape(shape), diff.max(-1).reshape(shape)


@dataclass(frozen=True)
class _Terms:
    """What the search needs of one signature, whichever side of a pair it is on."""

    rows: np.ndarray  # (m, n, n): every row crop of x on the fine grid
    coarse: np.ndarray  # (c*c, inner*inner): z-scored coarse-grid warps of x
    target: np.ndarray  # (inner*inner,): z-scored blurred x, as the other's target

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes + self.coarse.nbytes + self.target.nbytes


def _terms(x: np.ndarray) -> _Terms:
    side = x.shape[0]
    crops, coarse, blur = search_operators(side)
    inner = slice(BORDER, side - BORDER)
    target = zscore((blur @ x @ blur.T)[inner, inner].reshape(-1))
    rows = crops @ x  # cropping rows = the y axis
    cc = crops[coarse]
    warped = (rows[coarse][:, None] @ cc.transpose(0, 2, 1)[None])[:, :, inner, inner]
    return _Terms(rows, zscore(warped.reshape(-1, target.size)), target)


def _direction(tx: _Terms, ty: _Terms) -> tuple[float, float]:
    """Best crop of "a crop of x matches y": the coarse grid over both axes first, then
    each axis refined on the fine grid with the other held at its best. Returns that crop's
    (99th percentile, largest) |z difference|."""
    side = tx.rows.shape[1]
    crops, coarse, _ = search_operators(side)
    inner = slice(BORDER, side - BORDER)
    target = ty.target
    diff = np.abs(tx.coarse - target)
    sc, sc_peak = p99(diff), diff.max(-1)
    best = int(np.argmin(sc))
    iy, ix = np.unravel_index(best, (len(coarse), len(coarse)))
    iy, ix = coarse[iy], coarse[ix]
    fine_x, peak_x = _scores(tx.rows[iy : iy + 1], crops, target, inner)
    ix = int(np.argmin(fine_x[0]))
    fine_y, peak_y = _scores(tx.rows, crops[ix : ix + 1], target, inner)
    found = [(float(sc[best]), float(sc_peak[best]))]
    found.append((float(fine_x[0, ix]), float(peak_x[0, ix])))
    j = int(np.argmin(fine_y[:, 0]))
    found.append((float(fine_y[j, 0]), float(peak_y[j, 0])))
    return min(found, key=lambda f: f[0])  # the first of equal scores: coarse, then fine


def _distance_terms(ta: _Terms, tb: _Terms) -> tuple[float, float]:
    return min(_direction(ta, tb), _direction(tb, ta), key=lambda f: f[0])


def _distance(xa: np.ndarray, xb: np.ndarray) -> tuple[float, float]:
    return _distance_terms(_terms(xa), _terms(xb))


def _agrees(match: tuple[float, float]) -> bool:
    return match[0] <= VERIFY_MAX_P99_Z_DIFF and match[1] <= VERIFY_MAX_PEAK_Z_DIFF


def signature_pixels(sig: bytes) -> np.ndarray:
    side = int(round(len(sig) ** 0.5))
    return np.frombuffer(sig, np.uint8).astype(np.float32).reshape(side, side)


def _halved(x: np.ndarray) -> np.ndarray:
    n = x.shape[0] // 2
    return x[: 2 * n, : 2 * n].reshape(n, 2, n, 2).mean((1, 3))


def signature_match(a: bytes, b: bytes) -> tuple[float, float]:
    """Crop-tolerant comparison of two square grayscale signatures: the crop (either image
    cropped, per-axis scale and anchor) with the smallest 99th percentile |z_a - z_b|, as
    (that percentile, the largest |z_a - z_b| there)."""
    return _distance(signature_pixels(a), signature_pixels(b))


def signature_distance(a: bytes, b: bytes) -> float:
    """The 99th percentile part of :func:`signature_match`."""
    return signature_match(a, b)[0]


def coarse_signature_distance(a: bytes, b: bytes) -> float:
    """The same search on both signatures at half resolution (24x24 from 48x48): about a
    sixth of the cost, and a screen for pairs the full search would reject anyway."""
    return _distance(_halved(signature_pixels(a)), _halved(signature_pixels(b)))[0]


def _square_side(a: bytes, b: bytes) -> int | None:
    """Side of two equal square grayscale signatures (>= 8), else None."""
    if len(a) == 0 or len(a) != len(b) or len(a) == SMALL_SIGNATURE_BYTES:
        return None
    side = int(round(len(a) ** 0.5))
    return side if side * side == len(a) and side >= 8 else None


def thumbnails_agree(a: bytes, b: bytes) -> bool:
    """Second-signal check of a pHash match (raw signature bytes of both images)."""
    if len(a) == 0 or len(a) != len(b):
        return False
    if len(a) == SMALL_SIGNATURE_BYTES:
        xa = np.frombuffer(a, np.uint8).astype(np.float32)
        xb = np.frombuffer(b, np.uint8).astype(np.float32)
        return float(np.abs(xa - xb).mean()) <= VERIFY_MAX_MEAN_ABS_DIFF
    side = _square_side(a, b)
    if side is None:
        return False
    if side >= 2 * PRESCREEN_MIN_SIDE and coarse_signature_distance(a, b) > PRESCREEN_MAX:
        return False  # far apart even at half resolution: skip the full search
    return _agrees(signature_match(a, b))


class PairVerifier:
    """``thumbnails_agree`` for many pairs over the same images (a band bucket compares each
    image with many others): the per-signature terms of the search (its crops, coarse warps
    and target, at both resolutions) are computed once and kept, up to ``max_bytes`` per
    resolution (then the cache starts over). Decisions are those of ``thumbnails_agree``."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self._cache: dict[bool, dict[bytes, _Terms]] = {False: {}, True: {}}
        self._bytes = {False: 0, True: 0}

    def _get(self, sig: bytes, half: bool) -> _Terms:
        cache = self._cache[half]
        terms = cache.get(sig)
        if terms is None:
            x = signature_pixels(sig)
            terms = _terms(_halved(x) if half else x)
            if self._bytes[half] + terms.nbytes > self.max_bytes:
                cache.clear()
                self._bytes[half] = 0
            cache[sig] = terms
            self._bytes[half] += terms.nbytes
        return terms

    def agree(self, a: bytes, b: bytes) -> bool:
        side = _square_side(a, b)
        if side is None:
            return thumbnails_agree(a, b)  # legacy / malformed: no search, nothing to cache
        if side >= 2 * PRESCREEN_MIN_SIDE:
            coarse = _distance_terms(self._get(a, True), self._get(b, True))[0]
            if coarse > PRESCREEN_MAX:
                return False
        return _agrees(_distance_terms(self._get(a, False), self._get(b, False)))


def star_members(labels: list[str], sig_of, verifier: PairVerifier) -> list[list[str]]:
    """A near-duplicate component as stars: the smallest label survives with the members
    that verify against it themselves; the rest is split the same way again (greedy leader
    clustering, deterministic: labels sorted, survivor = smallest). Verified pairs chain
    (A~B and B~C while A and C differ): on the 20k benchmark corpus half of the wrong near
    drops were further than the verification threshold from the survivor they were dropped
    for. Returns the stars with at least two members, each sorted."""
    rest, stars = sorted(labels), []
    while len(rest) > 1:
        top = sig_of[rest[0]]
        star = [rest[0]] + [lab for lab in rest[1:] if verifier.agree(sig_of[lab], top)]
        if len(star) > 1:
            stars.append(star)
        chosen = set(star)
        rest = [lab for lab in rest if lab not in chosen]
    return stars

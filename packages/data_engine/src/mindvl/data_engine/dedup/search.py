"""The crop-tolerant comparison of two square gray thumbnails: both blurred,
brightness/contrast-normalised (z-scored), one cropped and rescaled over a small grid of
crops, then compared pixel by pixel; the result is the best crop's 99th percentile and
largest |z difference| (``Match``), which the near rule bounds (``compare.py``).

The crop grid: "b is a crop of a" (and vice versa) per axis, scale s = 1 / kept fraction,
crop anchored left .. right. A pure shift at s = 1 is not a crop (the content must also be
rescaled), which keeps same-size shapes at different positions apart. A coarse grid over
both axes first, then each axis refined on the fine grid with the other held at its best
(coordinate descent instead of the full fine product).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CROP_SCALES = (1.0, 1.04, 1.08, 1.12)
CROP_ANCHORS = (0.0, 0.5, 1.0)
FINE_SCALES = (1.0, 1.02, 1.04, 1.06, 1.08, 1.10, 1.12)
FINE_ANCHORS = (0.0, 0.25, 0.5, 0.75, 1.0)
# (scale, anchor) of each fine-grid operator, in order; s = 1 is not cropped: one anchor
FINE_COMBOS = tuple((s, a) for s in FINE_SCALES for a in ((0.5,) if s == 1.0 else FINE_ANCHORS))
BLUR_SIGMA_AT_32 = 0.7  # sub-pixel resampling of thin strokes does not count
Z_EPS = 4.0  # added to the std: flat thumbnails stay flat instead of amplifying noise
BORDER = 1  # edge pixels left out (clamped resampling there)
SIZE_ANCHOR_STEPS = 16  # anchor steps per axis of the crop at the sizes' scale


def resampler(n: int, s: float, anchor: float) -> np.ndarray:
    """(n, n) bilinear matrix for one axis: ``M @ x`` is the crop [x0, x0 + n/s] of x
    (x0 = anchor * (n - n/s)) resized back to n pixels."""
    i = np.arange(n) + 0.5
    u = np.clip(anchor * (1 - 1 / s) * n + i / s - 0.5, 0, n - 1)
    lo = np.floor(u).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    m = np.zeros((n, n))
    m[np.arange(n), lo] += 1 - (u - lo)
    m[np.arange(n), hi] += u - lo
    return m


def _blur_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) row-normalised Gaussian blur with edge renormalisation."""
    d = np.arange(n)[:, None] - np.arange(n)[None, :]
    g = np.exp(-0.5 * (d / sigma) ** 2)
    return g / g.sum(1, keepdims=True)


def _float32(m: np.ndarray) -> np.ndarray:
    """An operator as float32, its Gaussian tails below float32's smallest normal number set
    to 0: they change no sum, and subnormal operands slow a matmul some 30-fold on CPUs that
    take a microcode assist for them (Intel's)."""
    return np.where(np.abs(m) < np.finfo(np.float32).tiny, 0.0, m).astype(np.float32)


@lru_cache(maxsize=8)
def search_operators(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per side n: crop-and-blur operators on the fine grid (m, n, n), the indices of the
    coarse grid among them, and the plain blur (n, n)."""
    blur = _blur_matrix(n, BLUR_SIGMA_AT_32 * n / 32)
    crops = blur[None] @ np.stack([resampler(n, s, a) for s, a in FINE_COMBOS])
    coarse = [
        i
        for i, (s, a) in enumerate(FINE_COMBOS)
        if s in CROP_SCALES and (s == 1.0 or a in CROP_ANCHORS)
    ]
    return _float32(crops), np.array(coarse), _float32(blur)


@lru_cache(maxsize=256)
def crop_operators(n: int, s: float, anchors: tuple[float, ...], blur: bool = True) -> np.ndarray:
    """(len(anchors), n, n) crop operators of one axis at scale s (blurred as the search's)."""
    mats = np.stack([resampler(n, s, a) for a in anchors])
    if blur:
        mats = _blur_matrix(n, BLUR_SIGMA_AT_32 * n / 32)[None] @ mats
    return _float32(mats)


def zscore(x: np.ndarray) -> np.ndarray:
    """Rows less their mean over their standard deviation plus ``Z_EPS`` (``np.std``'s
    arithmetic, bit for bit, with the centred rows computed once)."""
    d = x - x.mean(-1, keepdims=True)
    return d / (np.sqrt((d * d).mean(-1, keepdims=True)) + Z_EPS)


def p99(diff: np.ndarray) -> np.ndarray:
    """Row-wise 99th percentile (the same order statistic the threshold was tuned on)."""
    k = int(0.99 * (diff.shape[-1] - 1))
    return np.partition(diff, k, axis=-1)[..., k]


def _scores(
    rows: np.ndarray, cols: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(len(rows), len(cols)) robust differences, 99th percentile of |z(warp) - z(target)|,
    and the largest |z(warp) - z(target)| of each warp."""
    inner = slice(BORDER, rows.shape[-1] - BORDER)
    warped = (rows[:, None] @ cols.transpose(0, 2, 1)[None])[:, :, inner, inner]
    diff = np.abs(zscore(warped.reshape(-1, target.size)) - target)
    shape = (rows.shape[0], cols.shape[0])
    return p99(diff).reshape(shape), diff.max(-1).reshape(shape)


@dataclass(frozen=True)
class SearchTerms:
    """What the search needs of one signature, whichever side of a pair it is on."""

    x: np.ndarray  # (n, n): the thumbnail
    rows: np.ndarray  # (m, n, n): every row crop of x on the fine grid
    coarse: np.ndarray  # (c*c, inner*inner): z-scored coarse-grid warps of x
    target: np.ndarray  # (inner*inner,): z-scored blurred x, as the other's target

    @property
    def nbytes(self) -> int:
        return self.x.nbytes + self.rows.nbytes + self.coarse.nbytes + self.target.nbytes


def blurred_targets(x: np.ndarray) -> np.ndarray:
    """(..., inner*inner): z-scored blurred thumbnails, the other side's target, of one
    square thumbnail (n, n) or a stack (k, n, n)."""
    side = x.shape[-1]
    _, _, blur = search_operators(side)
    inner = slice(BORDER, side - BORDER)
    return zscore((blur @ x @ blur.T)[..., inner, inner].reshape(*x.shape[:-2], -1))


def coarse_warps(row_crops: np.ndarray) -> np.ndarray:
    """(..., c*c, inner*inner): z-scored coarse-grid warps, from the coarse-grid row crops
    (..., c, n, n) of one thumbnail or a stack."""
    side = row_crops.shape[-1]
    crops, coarse, _ = search_operators(side)
    inner = slice(BORDER, side - BORDER)
    cols = crops[coarse].transpose(0, 2, 1)
    warped = (row_crops[..., :, None, :, :] @ cols)[..., inner, inner]
    return zscore(warped.reshape(*row_crops.shape[:-3], len(coarse) ** 2, -1))


def terms(x: np.ndarray) -> SearchTerms:
    crops, coarse, _ = search_operators(x.shape[0])
    rows = crops @ x  # cropping rows = the y axis
    return SearchTerms(x, rows, coarse_warps(rows[coarse]), blurred_targets(x))


@dataclass(frozen=True)
class Match:
    """The best crop found: its 99th percentile and largest |z difference|, its scale per
    axis (1 / kept fraction; 1 = not cropped), whether the first image is the cropped one
    and the crop's anchor per axis (None: compared uncropped)."""

    p99: float
    peak: float
    scale_y: float = 1.0
    scale_x: float = 1.0
    first_cropped: bool = True
    anchors: tuple[float, float] | None = None  # (y, x), each 0 (left/top) .. 1

    def operators(self, n: int, blur: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """The crop's (rows, columns) operators at side n: ``rows @ x @ columns.T``."""
        assert self.anchors is not None
        ay, ax = self.anchors
        return (crop_operators(n, self.scale_y, (ay,), blur)[0],
                crop_operators(n, self.scale_x, (ax,), blur)[0])  # fmt: skip


def _coarse(tx: SearchTerms, ty: SearchTerms) -> tuple[float, float, int, int]:
    """Best crop of "a crop of x matches y" on the coarse grid over both axes: its (99th
    percentile, largest) |z difference| and its fine-grid operator per axis (y, x)."""
    _, coarse, _ = search_operators(tx.rows.shape[1])
    diff = np.abs(tx.coarse - ty.target)
    sc = p99(diff)
    best = int(np.argmin(sc))
    iy, ix = np.unravel_index(best, (len(coarse), len(coarse)))
    return float(sc[best]), float(diff[best].max()), int(coarse[iy]), int(coarse[ix])


def _refined(tx: SearchTerms, ty: SearchTerms, start: tuple) -> tuple[float, float, int, int]:
    """From the coarse best ``start``, each axis refined on the fine grid with the other
    held at its best (cheap coordinate descent instead of the full fine product)."""
    crops, _, _ = search_operators(tx.rows.shape[1])
    iy = start[2]
    fine_x, peak_x = _scores(tx.rows[iy : iy + 1], crops, ty.target)
    ix = int(np.argmin(fine_x[0]))
    fine_y, peak_y = _scores(tx.rows, crops[ix : ix + 1], ty.target)
    j = int(np.argmin(fine_y[:, 0]))
    found = [start, (float(fine_x[0, ix]), float(peak_x[0, ix]), iy, ix)]
    found.append((float(fine_y[j, 0]), float(peak_y[j, 0]), j, ix))
    return min(found, key=lambda f: f[0])  # the first of equal scores: coarse, then fine


def match_terms(ta: SearchTerms, tb: SearchTerms, give_up_above: float | None = None) -> Match:
    """The best crop of either image against the other (their search terms). With
    ``give_up_above``: when neither direction's coarse-grid best is at or below it, that
    coarse best is returned without the fine refinement (which is most of the cost)."""
    starts = _coarse(ta, tb), _coarse(tb, ta)
    if give_up_above is not None and min(starts[0][0], starts[1][0]) > give_up_above:
        ab, ba = starts
    else:
        ab, ba = _refined(ta, tb, starts[0]), _refined(tb, ta, starts[1])
    first = ab[0] <= ba[0]
    p, peak, iy, ix = ab if first else ba
    (sy, ay), (sx, ax) = FINE_COMBOS[iy], FINE_COMBOS[ix]
    return Match(p, peak, sy, sx, first, (ay, ax))


def match_with_aspect(
    ta: SearchTerms, tb: SearchTerms, aspect_change: float, tolerance: float
) -> Match | None:
    """The best crop on the whole fine grid among those that turn the cropped image's aspect
    ratio (width / height) into the other's within ``tolerance`` in |log|;
    ``aspect_change`` is b's aspect ratio over a's. Slower than :func:`match_terms` (up to
    the whole grid): for the few pairs whose best crop does not explain their sizes. None
    when no crop of the grid does."""
    crops, _, _ = search_operators(ta.rows.shape[1])
    scales = np.array([s for s, _ in FINE_COMBOS])
    best = None
    for first, tx, ty, change in (
        (True, ta, tb, aspect_change),
        (False, tb, ta, 1 / aspect_change),
    ):
        for iy, sy in enumerate(scales.tolist()):
            ok = np.flatnonzero(np.abs(np.log(sy / scales / change)) <= tolerance)
            if ok.size == 0:
                continue
            sc, peak = _scores(tx.rows[iy : iy + 1], crops[ok], ty.target)
            j = int(np.argmin(sc[0]))
            if best is None or sc[0, j] < best.p99:
                found = (float(sc[0, j]), float(peak[0, j]), sy, float(scales[ok[j]]))
                anchors = (FINE_COMBOS[iy][1], FINE_COMBOS[ok[j]][1])
                best = Match(*found, first, anchors)
    return best


def identity_match(ta: SearchTerms, tb: SearchTerms) -> Match:
    """The two thumbnails compared as they are (no crop)."""
    diff = np.abs(ta.target - tb.target)
    return Match(float(p99(diff)), float(diff.max()))


def match_at(ta: SearchTerms, tb: SearchTerms, match: Match | None) -> Match:
    """Two thumbnails' search terms compared at the crop ``match`` found for others of the
    same pictures (None, or a match without anchors: uncropped)."""
    if match is None or match.anchors is None:
        return identity_match(ta, tb)
    tx, ty = (ta, tb) if match.first_cropped else (tb, ta)
    rows, cols = match.operators(tx.x.shape[0])
    p, peak = _scores((rows @ tx.x)[None], cols[None], ty.target)
    return Match(float(p[0, 0]), float(peak[0, 0]))


def _small_large(sa: np.ndarray, sb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair of (width, height) rows: the smaller by area, the larger (the first of equal
    areas counts as smaller), and whether the two sizes differ."""
    sa, sb = np.atleast_2d(sa), np.atleast_2d(sb)
    a_small = (sa[:, 0] * sa[:, 1] <= sb[:, 0] * sb[:, 1])[:, None]
    return np.where(a_small, sa, sb), np.where(a_small, sb, sa), (sa != sb).any(1)


def crop_sized(sa: np.ndarray, sb: np.ndarray, keep: float) -> np.ndarray:
    """Per pair of (width, height) rows: two sizes, the smaller that of a crop of the larger
    keeping at least ``keep`` of each side."""
    small, large, differ = _small_large(sa, sb)
    return ((small <= large) & (small >= keep * large)).all(1) & differ


def resize_sized(sa: np.ndarray, sb: np.ndarray, min_scale: float) -> np.ndarray:
    """Per pair of (width, height) rows: two sizes, the smaller that of a resize of the
    larger (both sides scaled by one factor, each rounded to a pixel) by at least
    ``min_scale``."""
    small, large, differ = _small_large(sa, sb)
    scale = small / large
    rounding = (0.5 / large).sum(1)
    fits = (np.abs(scale[:, 0] - scale[:, 1]) <= rounding) & (scale >= min_scale).all(1)
    return fits & (small <= large).all(1) & differ


def sizes_in_reach(sa: np.ndarray, sb: np.ndarray) -> np.ndarray:
    """Per pair of (width, height) rows: the smaller picture is a crop of the larger (or the
    larger a pad of the smaller) that keeps, to a pixel, at least the share of each side the
    grid's largest scale keeps (a 14 px crop of a 16 px icon, rounded, is in reach; a 113 px
    picture in a 133 px one is not). The pictures :func:`match_at_sizes` compares."""
    small, large, differ = _small_large(sa, sb)
    return (((small + 1) * FINE_SCALES[-1] >= large) & (small <= large)).all(1) & differ


def match_at_sizes(
    ta: SearchTerms, tb: SearchTerms, size_a: tuple[int, int], size_b: tuple[int, int]
) -> Match:
    """The best crop of the larger picture at the scale the two sizes give (the smaller a
    crop of the larger, or the larger a pad of the smaller, neither resized), its anchor
    searched per axis to ``SIZE_ANCHOR_STEPS`` steps. The grid of :func:`match_terms`
    reaches only its scales and anchors; a 14 px crop of a 16 px icon needs 1.143."""
    first = size_a[0] * size_a[1] >= size_b[0] * size_b[1]
    (large, small), (tx, ty) = (
        ((size_a, size_b), (ta, tb)) if first else ((size_b, size_a), (tb, ta))
    )
    side = tx.x.shape[0]
    sy, sx = large[1] / small[1], large[0] / small[0]
    anchors = tuple(np.linspace(0.0, 1.0, SIZE_ANCHOR_STEPS + 1).tolist())
    rows = crop_operators(side, sy, anchors) @ tx.x
    sc, peak = _scores(rows, crop_operators(side, sx, anchors), ty.target)
    iy, ix = np.unravel_index(int(np.argmin(sc)), sc.shape)
    return Match(float(sc[iy, ix]), float(peak[iy, ix]), sy, sx, first, (anchors[iy], anchors[ix]))


def halved(x: np.ndarray) -> np.ndarray:
    """A square thumbnail at half resolution (2x2 means)."""
    n = x.shape[0] // 2
    return x[: 2 * n, : 2 * n].reshape(n, 2, n, 2).mean((1, 3))

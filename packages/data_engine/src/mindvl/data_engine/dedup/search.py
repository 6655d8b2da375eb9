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


def _axis_resamplers(n: int) -> np.ndarray:
    """(m, n, n) bilinear matrices for one axis, one per ``FINE_COMBOS``: ``M @ x`` is the
    crop [x0, x0 + n/s] of x (x0 = anchor * (n - n/s)) resized back to n pixels."""
    i = np.arange(n) + 0.5
    rows = np.arange(n)
    mats = []
    for s, anchor in FINE_COMBOS:
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
    crops = blur[None] @ _axis_resamplers(n)
    coarse = [
        i
        for i, (s, a) in enumerate(FINE_COMBOS)
        if s in CROP_SCALES and (s == 1.0 or a in CROP_ANCHORS)
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
class SearchTerms:
    """What the search needs of one signature, whichever side of a pair it is on."""

    rows: np.ndarray  # (m, n, n): every row crop of x on the fine grid
    coarse: np.ndarray  # (c*c, inner*inner): z-scored coarse-grid warps of x
    target: np.ndarray  # (inner*inner,): z-scored blurred x, as the other's target

    @property
    def nbytes(self) -> int:
        return self.rows.nbytes + self.coarse.nbytes + self.target.nbytes


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
    return SearchTerms(rows, coarse_warps(rows[coarse]), blurred_targets(x))


@dataclass(frozen=True)
class Match:
    """The best crop found: its 99th percentile and largest |z difference|, its scale per
    axis (1 / kept fraction; 1 = not cropped) and whether the first image is the cropped
    one."""

    p99: float
    peak: float
    scale_y: float = 1.0
    scale_x: float = 1.0
    first_cropped: bool = True
    ops: tuple[int, int] | None = None  # the crop's fine-grid operators (rows, columns)


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
    side = tx.rows.shape[1]
    crops, _, _ = search_operators(side)
    inner = slice(BORDER, side - BORDER)
    target = ty.target
    iy = start[2]
    fine_x, peak_x = _scores(tx.rows[iy : iy + 1], crops, target, inner)
    ix = int(np.argmin(fine_x[0]))
    fine_y, peak_y = _scores(tx.rows, crops[ix : ix + 1], target, inner)
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
    return Match(p, peak, FINE_COMBOS[iy][0], FINE_COMBOS[ix][0], first, (iy, ix))


def match_with_aspect(
    ta: SearchTerms, tb: SearchTerms, aspect_change: float, tolerance: float
) -> Match | None:
    """The best crop on the whole fine grid among those that turn the cropped image's aspect
    ratio (width / height) into the other's within ``tolerance`` in |log|;
    ``aspect_change`` is b's aspect ratio over a's. Slower than :func:`match_terms` (up to
    the whole grid): for the few pairs whose best crop does not explain their sizes. None
    when no crop of the grid does."""
    side = ta.rows.shape[1]
    crops, _, _ = search_operators(side)
    inner = slice(BORDER, side - BORDER)
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
            sc, peak = _scores(tx.rows[iy : iy + 1], crops[ok], ty.target, inner)
            j = int(np.argmin(sc[0]))
            if best is None or sc[0, j] < best.p99:
                found = (float(sc[0, j]), float(peak[0, j]), sy, float(scales[ok[j]]))
                best = Match(*found, first, (iy, int(ok[j])))
    return best


def identity_match(ta: SearchTerms, tb: SearchTerms) -> Match:
    """The two thumbnails compared as they are (no crop)."""
    diff = np.abs(ta.target - tb.target)
    return Match(float(p99(diff)), float(diff.max()))


def match_at(ta: SearchTerms, tb: SearchTerms, match: Match | None) -> Match:
    """Two thumbnails' search terms compared at the crop ``match`` found for others of the
    same pictures (None, or a match without operators: uncropped)."""
    if match is None or match.ops is None:
        return identity_match(ta, tb)
    tx, ty = (ta, tb) if match.first_cropped else (tb, ta)
    side = tx.rows.shape[1]
    crops, _, _ = search_operators(side)
    iy, ix = match.ops
    p, peak = _scores(
        tx.rows[iy : iy + 1], crops[ix : ix + 1], ty.target, slice(BORDER, side - BORDER)
    )
    return Match(float(p[0, 0]), float(peak[0, 0]))


def halved(x: np.ndarray) -> np.ndarray:
    """A square thumbnail at half resolution (2x2 means)."""
    n = x.shape[0] // 2
    return x[: 2 * n, : 2 * n].reshape(n, 2, n, 2).mean((1, 3))

"""A vectorised screen of all candidate pairs of a bucket before the per-pair search:
the coarse crop grid of ``signature.py`` at a third of its resolution, as numpy over
chunks of pairs. It only rejects; what it keeps goes on to ``PairVerifier``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from mindvl.data_engine.dedup.signature import (
    BORDER,
    blurred_targets,
    coarse_warps,
    p99,
    search_operators,
    signature_pixels,
)
from mindvl.data_engine.dedup.signature_format import parse_signature
from mindvl.data_engine.dedup.verify import (
    PRESCREEN_MIN_SIDE,
    colours_differ,
    sizes_of_a_crop,
)

# Batch screen before any per-pair search (``screen_pairs``): the coarse crop grid only, at a
# third of the resolution (16x16 from 48x48), vectorised over all candidate pairs of a
# bucket. Pairs above SCREEN_MAX are rejected there. Measured with k=6 candidates: the
# largest screen distance of a pair the full search accepts was 0.96 / 1.11 / 0.99 on
# corpus-kit seeds 11 / 23 / 5 (400 per category, faults 0.3) and 0.75 on the 2k benchmark
# corpus; at 1.4 the screen keeps 35% of the 197k candidate pairs of the 20k benchmark
# corpus (mostly thin-line charts on white, whose pHashes all look alike) at ~0.2 ms a pair.
SCREEN_MAX = 1.4
SCREEN_FACTOR = 3
SCREEN_CHUNK = 512  # pairs per vectorised step (~80 KB of warps per pair and side)
SCREEN_MAX_BYTES = 512 << 20  # screen terms kept for all images of a call up to this size


def screen_pairs(
    sigs: list[bytes],
    left: np.ndarray,
    right: np.ndarray,
    distance: np.ndarray | None = None,
    crop_only_beyond: int | None = None,
) -> np.ndarray:
    """Which candidate pairs (indices into ``sigs``) still need ``verify.thumbnails_agree``:
    False for pairs further than ``crop_only_beyond`` pHash bits (``distance``) whose
    sizes are not those of a crop (``verify.sizes_of_a_crop``), pairs whose colours differ
    (the chroma rule of ``verify``, vectorised) or whose coarse-grid distance at a third of
    the resolution exceeds SCREEN_MAX. Pairs of signatures this screen does not apply to
    (legacy, malformed, unequal or too small) are kept for the full check."""
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    keep = np.ones(left.size, dtype=bool)
    parsed = [parse_signature(s) for s in sigs]
    if distance is not None and crop_only_beyond is not None:
        for p in np.flatnonzero(np.asarray(distance) > crop_only_beyond).tolist():
            keep[p] = sizes_of_a_crop(parsed[left[p]], parsed[right[p]])
    keep &= ~_colours_differ(parsed, left, right)
    gray_sides = [p.gray_side for p in parsed]
    side = Counter(gray_sides).most_common(1)[0][0] if sigs else None
    if side is None:
        return keep
    small = side // SCREEN_FACTOR
    if small < PRESCREEN_MIN_SIDE or side % SCREEN_FACTOR:
        return keep
    shape_ok = np.array([s == side for s in gray_sides], dtype=bool)
    used = np.unique(np.concatenate([left[keep], right[keep]]))
    pre = _Precomputed.build(sigs, small, used, shape_ok)
    for start in range(0, left.size, SCREEN_CHUNK):
        lo, hi = left[start : start + SCREEN_CHUNK], right[start : start + SCREEN_CHUNK]
        ok = shape_ok[lo] & shape_ok[hi] & keep[start : start + SCREEN_CHUNK]
        if not ok.any():
            continue
        lo, hi = lo[ok], hi[ok]
        if pre is not None:
            warps, targets, a, b = pre.warps, pre.targets, pre.pos[lo], pre.pos[hi]
        else:  # too many images to keep: this chunk's images only
            ids, inv = np.unique(np.concatenate([lo, hi]), return_inverse=True)
            warps, targets = _screen_terms(sigs, small, ids)
            a, b = inv[: lo.size], inv[lo.size :]
        d_ab = p99(np.abs(warps[a] - targets[b][:, None, :])).min(1)
        d_ba = p99(np.abs(warps[b] - targets[a][:, None, :])).min(1)
        keep[np.flatnonzero(ok) + start] = np.minimum(d_ab, d_ba) <= SCREEN_MAX
    return keep


def _colours_differ(parsed: list, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Pairs the chroma rules of ``verify`` reject (pairs without chroma on both sides are
    left to it)."""
    out = np.zeros(left.size, dtype=bool)
    has = np.array([p.chroma is not None for p in parsed], dtype=bool)
    if not has.any():
        return out
    planes = np.zeros((len(parsed), parsed[int(np.argmax(has))].chroma.size), dtype=np.float32)
    for i in np.flatnonzero(has).tolist():
        planes[i] = parsed[i].chroma.reshape(-1)
    both = np.flatnonzero(has[left] & has[right])
    for start in range(0, both.size, SCREEN_CHUNK * 16):
        at = both[start : start + SCREEN_CHUNK * 16]
        out[at] = colours_differ(planes[left[at]], planes[right[at]])
    return out


def _screen_terms(sigs: list[bytes], small: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = SCREEN_FACTOR
    x = np.stack([signature_pixels(sigs[i]) for i in ids.tolist()])
    x = x.reshape(len(ids), small, f, small, f).mean((2, 4))
    crops, coarse, _ = search_operators(small)
    return coarse_warps(crops[coarse] @ x[:, None]), blurred_targets(x)


@dataclass(frozen=True)
class _Precomputed:
    """Screen terms of every image the pairs use, when they fit in ``SCREEN_MAX_BYTES``
    (a band bucket's pairs share their images: each image's terms are computed once)."""

    warps: np.ndarray
    targets: np.ndarray
    pos: np.ndarray  # image index -> row

    @classmethod
    def build(cls, sigs, small, ids, shape_ok) -> _Precomputed | None:
        ids = ids[shape_ok[ids]]
        per_image = (len(search_operators(small)[1]) ** 2 + 1) * (small - 2 * BORDER) ** 2 * 4
        if ids.size * per_image > SCREEN_MAX_BYTES:
            return None
        parts = [_screen_terms(sigs, small, ids[i : i + 1024]) for i in range(0, ids.size, 1024)]
        pos = np.full(len(sigs), -1, dtype=np.int64)
        pos[ids] = np.arange(ids.size)
        if not parts:
            return None
        return cls(
            np.concatenate([w for w, _ in parts]), np.concatenate([t for _, t in parts]), pos
        )

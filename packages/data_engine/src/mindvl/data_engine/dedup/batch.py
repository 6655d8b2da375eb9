"""Step 4 of dedup over a call's candidate pairs: the checks that can be made for all pairs
at once (sizes, one-size colour, a 16x16 coarse screen: ``screen_pairs``), then the rule's
per-pair comparison (``compare.PairVerifier``) of the pairs left, in an order that keeps
each picture's search terms in the verifier's cache (``verify_pairs``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from mindvl.data_engine.dedup.compare import PRESCREEN_MIN_SIDE, PairVerifier, colours_differ
from mindvl.data_engine.dedup.fingerprint import parse_signature
from mindvl.data_engine.dedup.pixels import nested_icons, resized_icons
from mindvl.data_engine.dedup.rule import NearRule
from mindvl.data_engine.dedup.search import (
    BORDER,
    blurred_targets,
    coarse_warps,
    crop_sized,
    p99,
    search_operators,
    sizes_in_reach,
)

SCREEN_FACTOR = 3  # the batch screen works at a third of the resolution (16x16 from 48x48)
SCREEN_CHUNK = 512  # pairs per vectorised screen step (~80 KB of warps per pair and side)
SCREEN_MAX_BYTES = 512 << 20  # screen terms kept for all images of a call up to this size


def verify_pairs(sigs: list[bytes], left, right, distance, rule: NearRule) -> np.ndarray:
    """Which candidate pairs (``sigs[left[p]]``, ``sigs[right[p]]``, pHash ``distance[p]``)
    the rule accepts: the batch screen, then the per-pair checks (all, without ``verify``)."""
    left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
    if not rule.verify:
        return np.ones(left.size, dtype=bool)
    distance = np.asarray(distance)
    ok = screen_pairs(sigs, left, right, distance, rule)
    verifier = PairVerifier(rule)
    todo = np.flatnonzero(ok)
    for p in todo[_cache_order(left[todo], right[todo], len(sigs))].tolist():
        ok[p] = verifier.agree(sigs[left[p]], sigs[right[p]], int(distance[p]))
    return ok


def _cache_order(left: np.ndarray, right: np.ndarray, n: int) -> np.ndarray:
    """An order of the pairs (``left[p]``, ``right[p]`` of ``n`` images) that keeps the
    verifier's cache warm: by the later of their two images in a reverse Cuthill-McKee
    order of the pair graph, whose bandwidth bounds how many images are in use at once
    (each pair's decision is its own: the order changes none)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    if left.size == 0:
        return np.zeros(0, dtype=np.int64)
    graph = coo_matrix((np.ones(left.size), (left, right)), shape=(n, n)).tocsr()
    pos = np.empty(n, dtype=np.int64)
    pos[reverse_cuthill_mckee((graph + graph.T).tocsr(), symmetric_mode=True)] = np.arange(n)
    a, b = pos[left], pos[right]
    return np.lexsort((np.minimum(a, b), np.maximum(a, b)))


def screen_pairs(sigs: list[bytes], left, right, distance, rule: NearRule) -> np.ndarray:
    """False for pairs the rule rejects by sizes (far pairs, but two icons whose sizes a
    resize explains or of one size) or colour (pairs of one size), checked for all pairs at
    once, and for pairs whose 16x16 coarse-grid distance exceeds ``screen_max`` (but pairs
    with a crop's sizes, whose crop ``match_at_sizes`` finds, and icons nested or resized
    by size, whose pixels ``pixels_fit`` and ``resized_pixels_fit`` compare)."""
    left, right = np.asarray(left, dtype=np.int64), np.asarray(right, dtype=np.int64)
    keep = np.ones(left.size, dtype=bool)
    parsed = [parse_signature(s) for s in sigs]
    if not sigs:
        return keep
    sizes = np.array([p.size for p in parsed])
    native = np.array([p.native_part is not None for p in parsed])
    pair_sizes, pair_native = (sizes[left], sizes[right]), (native[left], native[right])
    resized = resized_icons(*pair_sizes, *pair_native, rule)
    icons = native[left] & native[right]
    one_size = (sizes[left] == sizes[right]).all(1)
    drift = np.array([p.phash_drift for p in parsed])
    distance = rule.evidence(distance, drift[left], drift[right], native[left] | native[right])
    far = distance > rule.crop_only_beyond_for(icons)
    far &= ~(icons & one_size)  # as ``first_failing_check``
    keep &= ~far | crop_sized(*pair_sizes, rule.crop_min_kept) | resized
    planes = np.stack([p.chroma.reshape(-1) for p in parsed])
    # the crop the sizes tell and an icon's own pixels are compared in full: no screen
    exempt = sizes_in_reach(*pair_sizes) | nested_icons(*pair_sizes, *pair_native, rule) | resized
    opaque = np.array([p.black is None for p in parsed])
    jpeg = icons & one_size & (opaque[left] | opaque[right])  # ``jpeg_of`` may find them
    jpeg &= sizes[left].prod(1) >= rule.jpeg_min_pixels  # ``_jpeg_first``
    exempt |= jpeg
    # two transparent pictures, one blank on white, are compared on black (``_on_black``)
    blank = np.array([p.blank_on_white for p in parsed])
    exempt |= ~opaque[left] & ~opaque[right] & (blank[left] | blank[right])
    # colour as it is only for pictures of one size; the others' at their crop (per pair)
    one_size &= ~jpeg
    for start in range(0, left.size, SCREEN_CHUNK * 16):
        at = slice(start, start + SCREEN_CHUNK * 16)
        keep[at] &= ~(
            colours_differ(planes[left[at]], planes[right[at]], rule, True) & one_size[at]
        )
    sides = [p.side for p in parsed]
    side = Counter(sides).most_common(1)[0][0]
    small = side // SCREEN_FACTOR
    if rule.screen_max is None or small < PRESCREEN_MIN_SIDE or side % SCREEN_FACTOR:
        return keep
    shape_ok = np.array([s == side for s in sides], dtype=bool)
    used = np.unique(np.concatenate([left[keep], right[keep]]))
    pre = _ScreenTerms.build(parsed, small, used[shape_ok[used]])
    for start in range(0, left.size, SCREEN_CHUNK):
        lo, hi = left[start : start + SCREEN_CHUNK], right[start : start + SCREEN_CHUNK]
        at = slice(start, start + SCREEN_CHUNK)
        ok = shape_ok[lo] & shape_ok[hi] & keep[at] & ~exempt[at]
        if not ok.any():
            continue
        lo, hi = lo[ok], hi[ok]
        if pre is not None:
            warps, targets, a, b = pre.warps, pre.targets, pre.pos[lo], pre.pos[hi]
        else:  # too many images to keep: this chunk's images only
            ids, inv = np.unique(np.concatenate([lo, hi]), return_inverse=True)
            warps, targets = _screen_terms(parsed, small, ids)
            a, b = inv[: lo.size], inv[lo.size :]
        d_ab = p99(np.abs(warps[a] - targets[b][:, None, :])).min(1)
        d_ba = p99(np.abs(warps[b] - targets[a][:, None, :])).min(1)
        keep[np.flatnonzero(ok) + start] = np.minimum(d_ab, d_ba) <= rule.screen_max
    return keep


def _screen_terms(parsed: list, small: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = SCREEN_FACTOR
    x = np.stack([parsed[i].pixels() for i in ids.tolist()])
    x = x.reshape(len(ids), small, f, small, f).mean((2, 4))
    crops, coarse, _ = search_operators(small)
    return coarse_warps(crops[coarse] @ x[:, None]), blurred_targets(x)


@dataclass(frozen=True)
class _ScreenTerms:
    """Screen terms of every image the pairs use, when they fit in ``SCREEN_MAX_BYTES``."""

    warps: np.ndarray
    targets: np.ndarray
    pos: np.ndarray  # image index -> row

    @classmethod
    def build(cls, parsed: list, small: int, ids: np.ndarray) -> _ScreenTerms | None:
        per_image = (len(search_operators(small)[1]) ** 2 + 1) * (small - 2 * BORDER) ** 2 * 4
        if ids.size == 0 or ids.size * per_image > SCREEN_MAX_BYTES:
            return None
        parts = [_screen_terms(parsed, small, ids[i : i + 1024]) for i in range(0, ids.size, 1024)]
        pos = np.full(len(parsed), -1, dtype=np.int64)
        pos[ids] = np.arange(ids.size)
        return cls(
            np.concatenate([w for w, _ in parts]), np.concatenate([t for _, t in parts]), pos
        )

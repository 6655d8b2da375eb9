"""Verification of a pHash match by second, independent signals (``signature_format``):
the chroma of both pictures, their sizes, and the crop-tolerant comparison of their gray
thumbnails (``signature.py``).

``thumbnails_agree`` decides one pair; ``PairVerifier`` decides many pairs over the same
images with the same answers (per-image search terms cached); ``star_members`` splits a
component of verified pairs into stars around survivors.
"""

from __future__ import annotations

import math

import numpy as np

from mindvl.data_engine.dedup.signature import (
    Match,
    SearchTerms,
    halved,
    identity_match,
    match_terms,
    match_with_aspect,
    signature_pixels,
    terms,
)
from mindvl.data_engine.dedup.signature_format import ParsedSignature, parse_signature

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
# the same relative position ~0.42, near-blank documents ~0.54. Those figures are from
# BOX thumbnails; with the antialiased ones (``signature_format.thumbnail``) the same
# bound gives 0.991 / 0.983 / 0.972 at precision 1.000 on seeds 11 / 23 / 5.
VERIFY_MAX_P99_Z_DIFF = 0.5
# ... and at that best crop no pixel may differ by more than this. The 99th percentile
# ignores the 21 most different of 2116 pixels, which is where a single changed glyph or
# bar lives ("10 - 4 = ?" vs "10 - 5 = ?"): on the 20k benchmark corpus 60% of the wrong
# near drops had a pixel above 1.0 at their best crop, against 0.5% of the right ones.
VERIFY_MAX_PEAK_Z_DIFF = 1.0
# Pre-screen: pairs whose half-resolution distance exceeds this are rejected without the
# full search. Measured on the corpus kit (400 per category, faults 0.3, k=6 candidates):
# the largest half-resolution distance of a pair the full search accepts was 0.74 / 0.97 /
# 0.92 (seeds 11 / 23 / 5); above 1.2 the screen removes 73% / 64% / 54% of the pairs the
# full search rejects, at ~1/6 of the cost each, and changed no decision there (nor in
# bench/data_engine.py at 2k and 20k images: identical dedup counts).
PRESCREEN_MAX = 1.2
PRESCREEN_MIN_SIDE = 16
# The full search's fine refinement (~5 ms a pair) is skipped when the coarse grid's best
# crop is above this in both directions. On 3,000 pairs of the 20k benchmark corpus that
# reached the full search, the largest coarse best of a pair it accepted was 0.58 and
# refinement improved on the coarse best by at most 0.47; at 0.8 the refinement is skipped
# for 71% of those pairs.
VERIFY_COARSE_GIVE_UP = 0.8
# Chroma: the 8x8 Cb and Cr planes as offsets from grey, one of them scaled by up to
# VERIFY_SATURATION_SCALE (brightness and contrast changes scale them). The sum of the
# |differences| over the sum of both pictures' |offsets| plus CHROMA_FLOOR per cell above
# this is two pictures whatever their gray thumbnails say (a red and a blue shape of one
# luminance); a near-grey pair is judged by mean |difference| / (2 * CHROMA_FLOOR).
# Relative, because a small coloured shape on a large background moves few cells of the
# 8x8 mean, and JPEG's chroma subsampling moves a colourful photo's cells a lot.
VERIFY_MAX_CHROMA_DIFF = 0.25
VERIFY_SATURATION_SCALE = 1.25
CHROMA_FLOOR = 8.0
# Hue: the angle between the two pictures' (Cb, Cr) offsets, per cell of the 8x8 chroma,
# averaged with the weight min(|offset a|, |offset b|) over the cells where both offsets
# are above HUE_MIN_SATURATION; a mean above this many degrees is two pictures. Brightness
# and contrast changes scale the offsets (the relative rule above allows for that), they do
# not turn them: a small shape keeps its hue in the cells it covers even where it moves the
# relative sum little (an orange and a red disc on black: relative 0.13, hue 31 degrees).
# On the 20k benchmark corpus and the corpus kit (seeds 11, 23, 5): the largest mean of
# the 1,258 planted near duplicates was 6.6 degrees; the wrong near drops that were colour
# confusions were all at 22 or more (orange / yellow, purple / blue, red / purple).
VERIFY_MAX_HUE_DEGREES = 15.0
HUE_MIN_SATURATION = 16.0
# Sizes: a crop of x (kept fractions 1/scale_x, 1/scale_y) changes x's aspect ratio by
# scale_y / scale_x, and that must be the other image's aspect ratio to within this
# |log ratio| (the fine grid steps by 0.02 in scale; sizes are rounded to whole pixels).
# Two images of exactly one size are compared uncropped: a crop that was resized back to
# the very same size is far less likely than two look-alikes (same icon, moved a little).
VERIFY_MAX_ASPECT_LOG_DIFF = 0.05
# Content boxes (content_box.py): when both pictures have one and their areas are within
# this ratio of each other (else the detection saw different things: no verdict), their
# thumbnails must also match, by the same crop search, within looser bounds (the box edges
# move by a scan pixel). On the 20k benchmark corpus: wrong near drops 72 -> 17 among the
# pairs every other check accepts, right ones 838 -> 836.
CONTENT_MAX_AREA_RATIO = 1.5
# Far pHash matches (further than ``near.crop_only_beyond`` bits): a resize, a re-encode or a
# colour change moves a pHash by a few bits, a crop by more (the layout shifts). A far pair
# is kept only when its sizes are those of a crop: one image no larger than the other on
# either side, smaller on one, and every side keeping at least this share.
CROP_MIN_KEPT = 0.8
# The content thumbnails' bound was 0.7 with BOX thumbnails; the antialiased ones
# (``signature_format.thumbnail``) with finer box edges (``content_box.py``) bring every
# pair closer, look-alike equations too. On the 20k benchmark corpus the right drops whose
# content thumbnails were compared reached 0.51 (one at 0.63 had a peak of 2.2), the
# closest look-alike equations 0.58-0.59 ("19 - 12" / "19 - 11", "18 + 7" / "10 + 7"):
# at 0.6 two of them were wrong drops, at 0.55 none; kit seeds 11 / 23 / 5 / 7 / 13 / 17 /
# 29 keep near recall >= 0.96 at 0.55.
VERIFY_MAX_CONTENT_P99_Z_DIFF = 0.55
VERIFY_MAX_CONTENT_PEAK_Z_DIFF = 2.0


def _agrees(match: Match) -> bool:
    return match.p99 <= VERIFY_MAX_P99_Z_DIFF and match.peak <= VERIFY_MAX_PEAK_Z_DIFF


def _scaled_chroma_differences(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise sum |s * x - y| / (sum |x| + sum |y| + the floor), s fitted (least
    squares) within 1 / VERIFY_SATURATION_SCALE .. VERIFY_SATURATION_SCALE."""
    norm = (x * x).sum(1)
    s = np.where(norm > 0, (x * y).sum(1) / np.where(norm > 0, norm, 1.0), 1.0)
    s = np.clip(s, 1 / VERIFY_SATURATION_SCALE, VERIFY_SATURATION_SCALE)
    scale = np.abs(x).sum(1) + np.abs(y).sum(1) + CHROMA_FLOOR * x.shape[1]
    return np.abs(s[:, None] * x - y).sum(1) / scale


def chroma_differences(ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """How far apart the colours of pairs of pictures are, relative to how colourful they
    are, up to a change of saturation; ``ca``, ``cb``: (pairs, 128) Cb/Cr planes (0..255)."""
    x = np.asarray(ca, dtype=np.float64) - 128.0
    y = np.asarray(cb, dtype=np.float64) - 128.0
    return np.minimum(_scaled_chroma_differences(x, y), _scaled_chroma_differences(y, x))


def hue_differences(ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """Mean hue angle in degrees between pairs of pictures (``VERIFY_MAX_HUE_DEGREES``);
    ``ca``, ``cb``: (pairs, 128) Cb/Cr planes (0..255). 0 where no cell is coloured in both."""
    x = np.asarray(ca, dtype=np.float64).reshape(len(ca), 2, -1) - 128.0
    y = np.asarray(cb, dtype=np.float64).reshape(len(cb), 2, -1) - 128.0
    sat_x, sat_y = np.hypot(x[:, 0], x[:, 1]), np.hypot(y[:, 0], y[:, 1])
    weight = np.minimum(sat_x, sat_y)
    weight = np.where(weight > HUE_MIN_SATURATION, weight, 0.0)
    cos = (x * y).sum(1) / np.maximum(sat_x * sat_y, 1e-9)
    angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    total = weight.sum(1)
    return np.where(total > 0, (angle * weight).sum(1) / np.where(total > 0, total, 1.0), 0.0)


def colours_differ(ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """Pairs of pictures whose chroma planes (pairs, 128) say they are two pictures: by the
    relative rule (``VERIFY_MAX_CHROMA_DIFF``) or by hue (``VERIFY_MAX_HUE_DEGREES``)."""
    return (chroma_differences(ca, cb) > VERIFY_MAX_CHROMA_DIFF) | (
        hue_differences(ca, cb) > VERIFY_MAX_HUE_DEGREES
    )


def chroma_difference(a: ParsedSignature, b: ParsedSignature) -> float:
    """:func:`chroma_differences` of one pair; 0 when either has no chroma."""
    if a.chroma is None or b.chroma is None:
        return 0.0
    return float(chroma_differences(a.chroma.reshape(1, -1), b.chroma.reshape(1, -1))[0])


def colour_differs(a: ParsedSignature, b: ParsedSignature) -> bool:
    """:func:`colours_differ` of one pair; False when either has no chroma."""
    if a.chroma is None or b.chroma is None:
        return False
    return bool(colours_differ(a.chroma.reshape(1, -1), b.chroma.reshape(1, -1))[0])


def aspect_change(a: ParsedSignature, b: ParsedSignature) -> float | None:
    """b's aspect ratio over a's; None when a size is unknown."""
    if a.size is None or b.size is None or min(*a.size, *b.size) <= 0:
        return None
    return (b.size[0] / b.size[1]) / (a.size[0] / a.size[1])


def sizes_explained(match: Match, a: ParsedSignature, b: ParsedSignature) -> bool:
    """Whether the crop of ``match`` turns one image's aspect ratio into the other's."""
    change = aspect_change(a, b)
    if change is None:
        return True
    needed = change if match.first_cropped else 1 / change
    return abs(math.log(match.scale_y / match.scale_x / needed)) <= VERIFY_MAX_ASPECT_LOG_DIFF


def sizes_of_a_crop(a: ParsedSignature, b: ParsedSignature) -> bool:
    """Whether one image's size is that of a crop of the other (``CROP_MIN_KEPT``)."""
    if a.size is None or b.size is None or a.size == b.size:
        return False
    small, large = sorted((a.size, b.size), key=lambda wh: wh[0] * wh[1])
    return all(large[i] * CROP_MIN_KEPT <= small[i] <= large[i] for i in (0, 1))


def _same_size(a: ParsedSignature, b: ParsedSignature) -> bool:
    return a.size is not None and a.size == b.size


def contents_agree(a: ParsedSignature, b: ParsedSignature) -> bool:
    """The content-box check; True when it does not apply."""
    if a.content is None or b.content is None or len(a.content) != len(b.content):
        return True
    small, large = sorted((a.content_area, b.content_area))
    if large > CONTENT_MAX_AREA_RATIO * small:
        return True
    side = a.gray_side
    pixels = [
        np.frombuffer(x, np.uint8).astype(np.float32).reshape(side, side)
        for x in (a.content, b.content)
    ]
    match = match_terms(terms(pixels[0]), terms(pixels[1]))
    return (
        match.p99 <= VERIFY_MAX_CONTENT_P99_Z_DIFF and match.peak <= VERIFY_MAX_CONTENT_PEAK_Z_DIFF
    )


def _comparable_side(a: ParsedSignature, b: ParsedSignature) -> int | None:
    """Side of two equal square gray thumbnails (>= 8), else None."""
    side = a.gray_side
    return side if side is not None and len(a.gray) == len(b.gray) else None


def _decide(a: ParsedSignature, b: ParsedSignature, get_terms) -> bool:
    """The decision for two parsed signatures with square gray thumbnails of one side;
    ``get_terms(which, half)`` gives the search terms of image ``which`` (0 = a, 1 = b) at
    full or half resolution."""
    if colour_differs(a, b):
        return False
    if _same_size(a, b):
        match = identity_match(get_terms(0, False), get_terms(1, False))
        return _agrees(match) and contents_agree(a, b)
    if a.gray_side >= 2 * PRESCREEN_MIN_SIDE:
        coarse = match_terms(get_terms(0, True), get_terms(1, True))
        if coarse.p99 > PRESCREEN_MAX:
            return False  # far apart even at half resolution: skip the full search
    ta, tb = get_terms(0, False), get_terms(1, False)
    match = match_terms(ta, tb, give_up_above=VERIFY_COARSE_GIVE_UP)
    if _agrees(match) and not sizes_explained(match, a, b):
        match = match_with_aspect(ta, tb, aspect_change(a, b), VERIFY_MAX_ASPECT_LOG_DIFF)
        if match is None:
            return False  # no crop explains the sizes
    return _agrees(match) and contents_agree(a, b)


def _legacy_agree(a: bytes, b: bytes) -> bool:
    xa = np.frombuffer(a, np.uint8).astype(np.float32)
    xb = np.frombuffer(b, np.uint8).astype(np.float32)
    return float(np.abs(xa - xb).mean()) <= VERIFY_MAX_MEAN_ABS_DIFF


def thumbnails_agree(a: bytes, b: bytes) -> bool:
    """Second-signal check of a pHash match (raw signature bytes of both images)."""
    pa, pb = parse_signature(a), parse_signature(b)
    if len(pa.gray) == 0 or len(pa.gray) != len(pb.gray):
        return False
    if len(pa.gray) == SMALL_SIGNATURE_BYTES:
        return _legacy_agree(pa.gray, pb.gray)
    if _comparable_side(pa, pb) is None:
        return False
    pixels = (signature_pixels(a), signature_pixels(b))
    return _decide(pa, pb, lambda i, half: terms(halved(pixels[i]) if half else pixels[i]))


class PairVerifier:
    """``thumbnails_agree`` for many pairs over the same images (a band bucket compares each
    image with many others): the per-signature terms of the search (its crops, coarse warps
    and target, at both resolutions) are computed once and kept, up to ``max_bytes`` per
    resolution (then the cache starts over). Decisions are those of ``thumbnails_agree``."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self._cache: dict[bool, dict[bytes, SearchTerms]] = {False: {}, True: {}}
        self._bytes = {False: 0, True: 0}

    def _get(self, sig: bytes, half: bool) -> SearchTerms:
        cache = self._cache[half]
        found = cache.get(sig)
        if found is None:
            x = signature_pixels(sig)
            found = terms(halved(x) if half else x)
            if self._bytes[half] + found.nbytes > self.max_bytes:
                cache.clear()
                self._bytes[half] = 0
            cache[sig] = found
            self._bytes[half] += found.nbytes
        return found

    def agree(self, a: bytes, b: bytes) -> bool:
        pa, pb = parse_signature(a), parse_signature(b)
        if _comparable_side(pa, pb) is None:
            return thumbnails_agree(a, b)  # legacy / malformed: no search, nothing to cache
        sigs = (a, b)
        return _decide(pa, pb, lambda i, half: self._get(sigs[i], half))


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

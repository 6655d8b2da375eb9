"""Step 4 of dedup: a candidate pair's signatures under the near rule.

``first_failing_check`` runs the rule's checks in order and names the first that says no;
the order, the bounds and why each check is there: docs/DEDUP.md, "The rule". In short:
two icons found in each other by their own pixels (a resize, pad, crop or JPEG:
``pixels.py``) are accepted first; a far pair must have a crop's sizes and its content at
one scale; two pictures of one size are compared as they are (colour, mean levels, gray
thumbnails, details), two sizes at their best crop (``search.py``: gray thumbnails and
aspect ratios, then colour and mean levels there); then the content boxes and the look on
black, and last two icons of one size by their own pixels, unless one is a re-encode.
Two transparent pictures one of which is blank on white (a white drawing) are compared on
black (``PairVerifier._view``). ``PairVerifier`` keeps each image's search terms across
the pairs it is asked about (``batch.verify_pairs``, ``groups.star_members``).
"""

from __future__ import annotations

import math

import numpy as np

from mindvl.data_engine.dedup.fingerprint import Signature, parse_signature
from mindvl.data_engine.dedup.pixels import (
    icons_differ,
    jpeg_of,
    nested_icons,
    pixels_fit,
    reencoded,
    resized_icons,
    resized_pixels_fit,
)
from mindvl.data_engine.dedup.rule import NearRule
from mindvl.data_engine.dedup.search import (
    Match,
    SearchTerms,
    crop_sized,
    halved,
    identity_match,
    match_at,
    match_at_sizes,
    match_terms,
    match_with_aspect,
    sizes_in_reach,
    terms,
)

PRESCREEN_MIN_SIDE = 16  # the screens need thumbnails of at least this side


def _scaled_chroma(x: np.ndarray, y: np.ndarray, rule: NearRule) -> np.ndarray:
    """Row-wise sum |s * x - y| / (sum |x| + sum |y| + the floor), s fitted (least squares)
    within 1 / saturation_scale .. saturation_scale."""
    norm = (x * x).sum(1)
    s = np.where(norm > 0, (x * y).sum(1) / np.where(norm > 0, norm, 1.0), 1.0)
    s = np.clip(s, 1 / rule.saturation_scale, rule.saturation_scale)
    scale = np.abs(x).sum(1) + np.abs(y).sum(1) + rule.chroma_floor * x.shape[1]
    return np.abs(s[:, None] * x - y).sum(1) / scale


def hue_differences(ca: np.ndarray, cb: np.ndarray, rule: NearRule) -> np.ndarray:
    """Mean hue angle in degrees between pairs of (pairs, 128) Cb/Cr planes, weighted by the
    smaller saturation over cells coloured in both (0 where none is)."""
    x = np.asarray(ca, dtype=np.float64).reshape(len(ca), 2, -1) - 128.0
    y = np.asarray(cb, dtype=np.float64).reshape(len(cb), 2, -1) - 128.0
    sat_x, sat_y = np.hypot(x[:, 0], x[:, 1]), np.hypot(y[:, 0], y[:, 1])
    weight = np.minimum(sat_x, sat_y)
    weight = np.where(weight > rule.hue_min_saturation, weight, 0.0)
    cos = (x * y).sum(1) / np.maximum(sat_x * sat_y, 1e-9)
    angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    total = weight.sum(1)
    return np.where(total > 0, (angle * weight).sum(1) / np.where(total > 0, total, 1.0), 0.0)


def chroma_differences(ca: np.ndarray, cb: np.ndarray, rule: NearRule) -> np.ndarray:
    """How far apart the colours of pairs of (pairs, 128) Cb/Cr planes are, relative to how
    colourful they are, up to a change of saturation."""
    x = np.asarray(ca, dtype=np.float64) - 128.0
    y = np.asarray(cb, dtype=np.float64) - 128.0
    return np.minimum(_scaled_chroma(x, y, rule), _scaled_chroma(y, x, rule))


def colours_differ(ca: np.ndarray, cb: np.ndarray, rule: NearRule, one_size=False) -> np.ndarray:
    """Pairs of (pairs, 128) Cb/Cr planes that are two pictures by chroma or by hue; pairs of
    one size (``one_size``, per pair or for all) held to ``one_size_max_hue_degrees``."""
    max_hue = np.where(one_size, rule.one_size_max_hue_degrees, rule.max_hue_degrees)
    return (chroma_differences(ca, cb, rule) > rule.max_chroma) | (
        hue_differences(ca, cb, rule) > max_hue
    )


def content_at_one_scale(a: Signature, b: Signature, rule: NearRule) -> bool:
    """The trim boxes have one size (within ``trim_max_change`` and a pixel) along each axis
    where neither touches its picture's border (a crop may cut into the content there)."""
    ta, tb = a.trimmed, b.trimmed
    if ta is None or tb is None:
        return True
    for x, y, cut in (
        (ta.width, tb.width, ta.touches_x or tb.touches_x),
        (ta.height, tb.height, ta.touches_y or tb.touches_y),
    ):
        if not cut and abs(x - y) > 1 + rule.trim_max_change * max(x, y):
            return False
    return True


def only_pad_or_crop(a: Signature, b: Signature, rule: NearRule) -> bool:
    """Nothing but a pad or a crop explains the pair, not a resize (which would change the
    content's size), so the smaller picture must keep its pixels: the content lies inside
    both canvases (no trim box touches a border) at one size; or the smaller picture is all
    content (its trim box is its canvas: a flag) and the larger's content, inside its
    canvas, has that size (the smaller padded); or the trim boxes have one size along an
    axis where neither touches a border (a crop may cut into the content along the other)
    and a resize by the two sizes' ratio along it would change that size by more than a
    pixel and ``trim_max_change``."""
    small, large = sorted((a, b), key=lambda s: s.size[0] * s.size[1])
    ts, tl = small.trimmed, large.trimmed
    if ts is None or tl is None or not content_at_one_scale(a, b, rule):
        return False
    axes = (
        (small.size[0], large.size[0], ts.width, tl.width, ts.touches_x or tl.touches_x),
        (small.size[1], large.size[1], ts.height, tl.height, ts.touches_y or tl.touches_y),
    )
    if not any(cut for *_, cut in axes):
        return True  # a resize ruled out to a pixel
    slack = [1 + rule.trim_max_change * max(x, y) for _, _, x, y, _ in axes]
    if (ts.width, ts.height) == small.size and not (tl.touches_x or tl.touches_y):
        return all(abs(x - y) <= e for (_, _, x, y, _), e in zip(axes, slack, strict=True))
    return any(not cut and abs(x * (cl / cs - 1)) > e
               for (cs, cl, x, _, cut), e in zip(axes, slack, strict=True))  # fmt: skip


def _agrees(match: Match, rule: NearRule) -> bool:
    return match.p99 <= rule.max_p99 and match.peak <= rule.max_peak


def one_size_changed(a: Signature, b: Signature) -> np.ndarray:
    """|b - (s a + t)| per pixel of two same-size gray thumbnails, s and t the least-squares
    fit of a's levels to b's (a brightness or contrast change is not a difference)."""
    x, y = a.pixels().reshape(-1), b.pixels().reshape(-1)
    var = float(x.var())
    s = float(((x - x.mean()) * (y - y.mean())).mean()) / var if var > 0 else 1.0
    return np.abs(y - (s * x + (y.mean() - s * x.mean())))


def contents_agree(a: Signature, b: Signature, rule: NearRule) -> bool:
    if a.content is None or b.content is None or len(a.content) != len(b.content):
        return True
    small, large = sorted((a.content_area, b.content_area))
    if large > rule.content_max_area_ratio * small:
        return True  # the detection saw different things: no verdict
    match = match_terms(terms(a.pixels("content")), terms(b.pixels("content")))
    return match.p99 <= rule.content_max_p99 and match.peak <= rule.content_max_peak


def _jpeg_first(a: Signature, rule: NearRule) -> bool:
    """Two icons of ``a``'s size are tried as a JPEG of each other first (``jpeg_of``)."""
    return a.size[0] * a.size[1] >= rule.jpeg_min_pixels


def found_in_pixels(a: Signature, b: Signature, rule: NearRule) -> bool:
    """Two icons, each carrying its own pixels, one found in the other pixel for pixel: of
    one size, one a JPEG of the other (``jpeg_of``; at least ``jpeg_min_pixels`` pixels);
    of two, a resize (their sizes a resize explains: ``resized_pixels_fit``) or a
    pad or crop that kept every pixel (one within the other's size: ``pixels_fit``)."""
    if a.native_part is None or b.native_part is None:
        return False
    if a.size == b.size:
        return _jpeg_first(a, rule) and jpeg_of(a, b, rule)
    sizes = np.array(a.size), np.array(b.size)
    if resized_icons(*sizes, True, True, rule)[0] and resized_pixels_fit(a, b, rule):
        return True
    return bool(nested_icons(*sizes, True, True, rule)[0] and pixels_fit(a, b, rule))


def first_failing_check(
    a: Signature, b: Signature, rule: NearRule, get_terms, distance: int | None = None
) -> str | None:
    """The name of the first check that rejects the pair, None when all accept;
    ``get_terms(which, half, part="gray")``: search terms of image ``which`` (0 = a, 1 = b)
    at full or half resolution, of its thumbnail ``part``; ``distance``: the pair's pHash
    distance (None: no crop-size check)."""
    if len(a.gray) != len(b.gray):
        return "gray"
    if found_in_pixels(a, b, rule):
        return None  # a resize, pad or crop, found pixel for pixel (whatever the pHash says)
    has = a.native_part is not None, b.native_part is not None  # icons: their own pixels
    if all(has) and a.size == b.size:
        distance = None  # two icons of one size: their own pixels decide, not their pHash
    elif distance is not None:  # less a noisy pHash's drift (pictures over icon size)
        distance = int(rule.evidence(distance, a.phash_drift, b.phash_drift, any(has)))
    sizes = np.array(a.size), np.array(b.size)
    resized = a.size != b.size and resized_icons(*sizes, *has, rule)[0]
    far = distance is not None and distance > rule.crop_only_beyond_for(all(has))
    if far and not crop_sized(*sizes, rule.crop_min_kept)[0]:
        return "crop_sizes"
    nested = a.size != b.size and nested_icons(*sizes, *has, rule)[0]
    if (
        distance is not None
        and distance > rule.max_hamming
        and not content_at_one_scale(a, b, rule)
    ):
        return "trim_scale"
    if a.size == b.size:  # one size: compared uncropped (a crop resized back is unlikely)
        if colours_at(a, b, None, rule):
            return "colour"
        if levels_at(a, b, None, rule):
            return "levels"
        same = identity_match(get_terms(0, False), get_terms(1, False))
        if same.p99 > rule.one_size_max_p99 or same.peak > rule.max_peak:
            return "gray"
        if (one_size_changed(a, b) > rule.one_size_levels).sum() > rule.one_size_max_pixels:
            return "one_size"
        found = _last_checks(a, b, rule, get_terms, None)
        if found is None and all(has) and icons_differ(a, b, rule):
            # as they are, a JPEG where ``found_in_pixels`` did not try that first, a WebP
            return None if reencoded(a, b, rule, not _jpeg_first(a, rule)) else "pixels"
        return found
    if nested and only_pad_or_crop(a, b, rule):
        return "pixels"
    match = None
    # first the crop (or pad) the two sizes tell: no resize, so the content keeps its size
    if sizes_in_reach(np.array(a.size), np.array(b.size))[0] and content_at_one_scale(a, b, rule):
        match = match_at_sizes(get_terms(0, False), get_terms(1, False), a.size, b.size)
        # nothing but a pad or crop explains the pair, and neither picture is small enough
        # for its thumbnail to resample every edge: compared at that crop only (no grid),
        # where a changed glyph or emblem stands out as a peak
        unresized = not any(has) and only_pad_or_crop(a, b, rule)
        if unresized and not (_agrees(match, rule) and match.peak <= rule.pad_max_peak):
            return "gray"
    if match is None or not _agrees(match, rule):
        found = _grid_match(a, b, rule, get_terms)
        if isinstance(found, str):
            return found
        match = found
    if resized and match.p99 > rule.resized_unfit_max_p99:
        return "gray"  # sizes a resize explains, pixels no resize reproduces
    if colours_at(a, b, match, rule):
        return "colour"
    if levels_at(a, b, match, rule):
        return "levels"
    return _last_checks(a, b, rule, get_terms, match)


def levels_at(a: Signature, b: Signature, match: Match | None, rule: NearRule) -> bool:
    """Whether the two pictures' mean levels differ by more than ``max_level_shift`` on a
    ground both carry (white; black when both are transparent), compared at the crop
    ``match`` found (None: as they are)."""
    for part in ("gray", "black") if a.black is not None and b.black is not None else ("gray",):
        x, y = _at_crop(a.pixels(part), b.pixels(part), match)
        if abs(float(x.mean()) - float(y.mean())) > rule.max_level_shift:
            return True
    return False


def _at_crop(x: np.ndarray, y: np.ndarray, match: Match | None) -> tuple[np.ndarray, np.ndarray]:
    """Two pictures' planes (square, last two axes) with the one ``match`` crops cut to
    that crop (None, or a match without a crop: as they are)."""
    if match is None or match.anchors is None:
        return x, y
    rows, cols = match.operators(x.shape[-1], blur=False)
    return (rows @ x @ cols.T, y) if match.first_cropped else (x, rows @ y @ cols.T)


def colours_at(a: Signature, b: Signature, match: Match | None, rule: NearRule) -> bool:
    """Whether the two pictures' colours differ, their chroma planes compared at the crop
    ``match`` found on the gray thumbnails (None: as they are): a pad or crop moves every
    8x8 cell's content, which is no change of colour."""
    ca, cb = _at_crop(a.chroma, b.chroma, match)
    return bool(colours_differ(ca.reshape(1, -1), cb.reshape(1, -1), rule, a.size == b.size)[0])


def _grid_match(a: Signature, b: Signature, rule: NearRule, get_terms) -> Match | str:
    """The best crop on the search's grid whose scales explain the two aspect ratios, or
    the name of the check that rejects the pair."""
    if rule.prescreen_max is not None and a.side >= 2 * PRESCREEN_MIN_SIDE:  # noqa: SIM102
        if match_terms(get_terms(0, True), get_terms(1, True)).p99 > rule.prescreen_max:
            return "prescreen"  # far apart even at half resolution: skip the full search
    ta, tb = get_terms(0, False), get_terms(1, False)
    match = match_terms(ta, tb, give_up_above=rule.give_up_above)
    if not _agrees(match, rule):
        return "gray"
    change = (b.size[0] / b.size[1]) / (a.size[0] / a.size[1])  # b's aspect ratio over a's
    needed = change if match.first_cropped else 1 / change
    if abs(math.log(match.scale_y / match.scale_x / needed)) > rule.max_aspect_log:
        match = match_with_aspect(ta, tb, change, rule.max_aspect_log)
        if match is None:
            return "sizes"
        if not _agrees(match, rule):
            return "gray"
    return match


def _last_checks(a: Signature, b: Signature, rule: NearRule, get_terms, match) -> str | None:
    """``content``, then ``alpha``: the thumbnails on black at ``match``'s crop (None: as
    they are)."""
    if not contents_agree(a, b, rule):
        return "content"
    if a.black is None or b.black is None:
        return None  # an opaque picture (a JPEG on white) is its flattened look
    ta, tb = get_terms(0, False, "black"), get_terms(1, False, "black")
    return None if _agrees(match_at(ta, tb, match), rule) else "alpha"


class PairVerifier:
    """The rule's decision for many pairs over the same images: each signature's search
    terms (crops, coarse warps and target, per resolution and thumbnail part) are computed
    once and kept, up to ``max_bytes`` (least recently used first out)."""

    def __init__(self, rule: NearRule, max_bytes: int = 256 << 20) -> None:
        self.rule = rule
        self.max_bytes = max_bytes
        self._cache: dict[tuple, SearchTerms] = {}
        self._bytes = 0
        self._closeness: dict[tuple[bytes, bytes], tuple[int, float]] = {}

    def _get(self, sig: bytes, parsed: Signature, half: bool, part: str = "gray") -> SearchTerms:
        key = sig, half, part
        found = self._cache.pop(key, None)
        if found is None:
            x = parsed.pixels(part)
            found = terms(halved(x) if half else x)
            self._bytes += found.nbytes
            while self._bytes > self.max_bytes and self._cache:  # the least recently used go
                self._bytes -= self._cache.pop(next(iter(self._cache))).nbytes
        self._cache[key] = found  # the most recently used last
        return found

    def _view(self, a: bytes, b: bytes):
        """Two signatures (bytes) as the rule compares them, and their ``get_terms``: two
        transparent pictures, one blank on white (``Signature.blank_on_white``), on black."""
        sigs, parsed = (a, b), (parse_signature(a), parse_signature(b))
        if not _on_black(*parsed):
            return parsed, lambda i, *how: self._get(sigs[i], parsed[i], *how)
        swap = {"gray": "black", "black": "gray"}
        seen = (parsed[0].on_black(), parsed[1].on_black())
        return seen, lambda i, half, part="gray": self._get(sigs[i], parsed[i], half, swap[part])

    def check(self, a: bytes, b: bytes, distance: int | None = None) -> str | None:
        """``first_failing_check`` of two signatures (bytes)."""
        seen, get_terms = self._view(a, b)
        return first_failing_check(*seen, self.rule, get_terms, distance)

    def agree(self, a: bytes, b: bytes, distance: int | None = None) -> bool:
        return self.check(a, b, distance) is None

    def closeness(self, a: bytes, b: bytes) -> tuple[int, float]:
        """How close two signatures are (lower: closer): 0 when one is found in the other by
        its pixels (``found_in_pixels``), else 1; then the 99th percentile |z difference| of
        their gray thumbnails at their best crop. Kept per pair: the stars ask it of a
        member and its survivor twice (``groups.star_members``, ``_told_apart_leave``)."""
        found = self._closeness.get((a, b))
        if found is None:
            seen, get_terms = self._view(a, b)
            ta, tb = get_terms(0, False), get_terms(1, False)
            found = int(not found_in_pixels(*seen, self.rule)), match_terms(ta, tb).p99
            self._closeness[a, b] = found
        return found


def _on_black(a: Signature, b: Signature) -> bool:
    """Two transparent pictures, one of them blank on white: compared on black."""
    return a.black is not None and b.black is not None and (a.blank_on_white or b.blank_on_white)

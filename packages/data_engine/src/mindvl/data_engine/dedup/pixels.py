"""Icons compared by their own pixels (a picture of at most ``fingerprint.NATIVE_MAX_SIDE``
px a side carries them): a pad or crop found at a whole-pixel offset (``pixels_fit``), a
resize reproduced by a common resampler (``resized_pixels_fit``), two icons of one size at
their best move (``icons_differ``), and a JPEG or a lossy WebP told from its original by
encoding the original (``jpeg_of``, ``webp_of``, ``reencoded``). Where and in which order
the near rule asks for each: ``compare.first_failing_check``; bounds: ``rule.NearRule``;
measured: docs/DEDUP.md.
"""

from __future__ import annotations

import io
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mindvl.data_engine.dedup.fingerprint import Signature
from mindvl.data_engine.dedup.rule import NearRule
from mindvl.data_engine.dedup.search import crop_sized, resize_sized

# the resamplers a resize is tried with (which others were tried: docs/DEDUP.md): Pillow's,
# which widen their support on a downscale, and OpenCV's linear and cubic, which do not,
# each on the composited grounds (a premultiplied resize) and, for a transparent picture,
# on its colour and alpha apart (a straight-alpha resize, as OpenCV and many tools do:
# ``_straight``); and Pillow's bilinear and bicubic in linear light (as GIMP: ``_linear``)
RESIZE_FILTERS = ("BILINEAR", "BICUBIC", "LANCZOS", "BOX")  # Pillow names
CV_RESIZES = ("INTER_LINEAR", "INTER_CUBIC")  # OpenCV names
STRAIGHT_RESIZES = RESIZE_FILTERS + CV_RESIZES  # also tried on straight alpha
LINEAR_FILTERS = ("BILINEAR", "BICUBIC")  # Pillow names
# re-encodes simulated (``_encoded_fits``): a JPEG at a quality between two of these is
# within the two-pixel bound of one at the nearest (at steps of 10 below 75, not always)
JPEG_QUALITIES = tuple(range(40, 100, 5))
# lossy WebPs simulated (``webp_of``, at Pillow's default effort): an icon's WebP at a
# quality between two of these and at any effort (``method`` 0-6) is mostly within the
# two-pixel bound of one of them (not always where semi-transparent edges' colour, which
# a signature keeps to a level or two, moves the encode)
WEBP_QUALITIES = tuple(range(40, 100, 5))


def nested_icons(sa: np.ndarray, sb: np.ndarray, na, nb, rule: NearRule) -> np.ndarray:
    """Per pair of (width, height) rows and whether each carries its own pixels
    (``fingerprint.NATIVE_MAX_SIDE``): both do and the smaller fits inside the larger as a
    crop would (``crop_min_kept`` of each side), so its pixels may be found there."""
    return np.asarray(na) & np.asarray(nb) & crop_sized(sa, sb, rule.crop_min_kept)


def resized_icons(sa: np.ndarray, sb: np.ndarray, na, nb, rule: NearRule) -> np.ndarray:
    """Per pair of (width, height) rows and whether each carries its own pixels: both do and
    the smaller's size is a resize of the larger's by at least ``resize_min_scale``, so one
    resized to the other's size may reproduce its pixels."""
    return np.asarray(na) & np.asarray(nb) & resize_sized(sa, sb, rule.resize_min_scale)


def pixels_fit(a: Signature, b: Signature, rule: NearRule) -> bool:
    """The smaller picture's own pixels are found in the larger's at some whole-pixel offset:
    on every ground both carry (white, and black when both are transparent), at most
    ``one_size_max_pixels`` differ by more than ``one_size_levels`` in a colour channel.
    Levels are not fitted: a pad or crop keeps the pixels themselves, and a fit would make
    an icon with a part dimmed the same icon."""
    small, large = sorted((a, b), key=lambda s: s.size[0] * s.size[1])
    h, w = small.native[0].shape[:2]
    grounds = range(min(len(small.native), len(large.native)))
    views = [sliding_window_view(large.native[g], (h, w, 3))[:, :, 0] for g in grounds]
    at = np.argwhere(np.ones(views[0].shape[:2], dtype=bool))  # the offsets still possible
    # every fourth row first: its count bounds the whole count from below
    for rows in (slice(None, None, 4), slice(None)):
        for g in grounds:
            windows = views[g][:, :, rows][at[:, 0], at[:, 1]]  # (offsets, rows, w, 3)
            over = np.abs(windows - small.native[g][rows]).max(-1) > rule.one_size_levels
            at = at[over.sum((-2, -1)) <= rule.one_size_max_pixels]
    return bool(at.size)


def _pixels_over(x: np.ndarray, y: np.ndarray, rule: NearRule) -> int:
    """How many pixels of two (height, width, 3) planes differ by more than
    ``one_size_levels`` in a colour channel."""
    return int(np.count_nonzero(_off(x, y, rule)))


def _jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    """A (height, width, 3) plane after a JPEG encode (Pillow's libjpeg, 4:2:0 chroma) and
    decode at ``quality``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.rint(np.clip(x, 0, 255)).astype(np.uint8), "RGB").save(
        buf, "JPEG", quality=quality
    )
    return np.asarray(Image.open(buf).convert("RGB"), np.float32)


def _encoded_fits(x: np.ndarray, dst: Signature, rule: NearRule) -> bool:
    """Plane ``x`` (another picture's pixels on white at opaque ``dst``'s size), after a JPEG
    encode at one of ``JPEG_QUALITIES``, is ``dst``'s: at most ``one_size_max_pixels``
    differ by more than ``one_size_levels`` in a colour channel (a JPEG at any quality
    between them is within the bound of one at the nearest; the encode's ringing and chroma
    bleed move far more pixels than that, so a re-encode is told from its original only
    this way)."""
    return any(_pixels_over(_jpeg(x, q), dst.native[0], rule) <= rule.one_size_max_pixels
               for q in JPEG_QUALITIES)  # fmt: skip


def _mean_apart(src: Signature, dst: Signature) -> float:
    """The mean level difference on white between ``dst`` and ``src`` resized to its size by
    bicubic (the screen of ``resized_pixels_fit``)."""
    return float(np.abs(_resize(src.native[0], dst.size, "BICUBIC") - dst.native[0]).mean())


def resized_pixels_fit(a: Signature, b: Signature, rule: NearRule) -> bool:
    """One picture's own pixels, resized to the other's size by one of the common
    resamplers (``RESIZE_FILTERS``, ``CV_RESIZES``: premultiplied, then straight alpha;
    ``LINEAR_FILTERS`` in linear light), are the other's on every ground both carry (at
    most ``one_size_max_pixels`` over ``one_size_levels``; an opaque one may be a JPEG of
    the resize, ``_encoded_fits``, tried on the nearest of Pillow's and the nearest of
    all): a resize by that resampler, or one near it, reproduces them to a few levels;
    another glyph or emblem, even a small one, moves more pixels than that. Levels are not
    fitted, as in ``pixels_fit``."""
    screen = rule.resize_screen_levels
    if screen is not None and all(_mean_apart(x, y) > screen for x, y in ((a, b), (b, a))):
        return False
    grounds = range(min(len(a.native), len(b.native)))
    return _resize_fits(a, b, grounds, rule) or _resize_fits(b, a, grounds, rule)


def _resize_fits(src: Signature, dst: Signature, grounds: range, rule: NearRule) -> bool:
    """``resized_pixels_fit`` one way: ``src`` resized to ``dst``'s size."""
    found = []  # per trial: (pixels off on each ground, the plane on white)

    def fits(resized: list[np.ndarray]) -> bool:
        off = [_off(x, dst.native[g], rule) for g, x in zip(grounds, resized, strict=True)]
        found.append((off, resized[0]))
        return _count_off(found[-1]) <= rule.one_size_max_pixels

    premultiplied = RESIZE_FILTERS + CV_RESIZES
    if any(fits([_resize(src.native[g], dst.size, how) for g in grounds]) for how in premultiplied):
        return True
    pillow = found[: len(RESIZE_FILTERS)]  # the common encoders' resize, for the JPEGs
    parts = _colour_and_alpha(src) if len(src.native) > 1 else None  # transparent
    edges = _edges(parts[1], dst.size) if parts is not None and STRAIGHT_RESIZES else None
    for how, (off, _) in zip(premultiplied, found[: len(premultiplied)], strict=True):
        if edges is None or how not in STRAIGHT_RESIZES:
            continue
        # straight alpha changes only the edges: off away from them, it cannot fit either
        if max(np.count_nonzero(o & ~edges) for o in off) > rule.one_size_max_pixels:
            continue
        if fits(_straight(parts, dst, how, len(grounds))):
            return True
    light = _in_linear_light(src, parts) if LINEAR_FILTERS else None
    if any(fits(_linear(light, dst.size, how, len(grounds))) for how in LINEAR_FILTERS):
        return True
    if len(dst.native) > 1:
        return False
    # an opaque one may be a JPEG of the resize: tried on the nearest of Pillow's and of all
    nearest = {id(x): x for x in (min(t, key=_count_off)[1] for t in (pillow, found))}
    return any(_encoded_fits(x, dst, rule) for x in nearest.values())


def _count_off(trial: tuple[list[np.ndarray], np.ndarray]) -> int:
    """The pixels off of a trial of ``resized_pixels_fit``: on its worst ground."""
    return max(np.count_nonzero(o) for o in trial[0])


def _off(x: np.ndarray, y: np.ndarray, rule: NearRule) -> np.ndarray:
    """The pixels of two (height, width, 3) planes more than ``one_size_levels`` apart in a
    colour channel."""
    return np.abs(x - y).max(-1) > rule.one_size_levels


def _edges(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The pixels at ``size`` whose value any resampler of ``resized_pixels_fit`` draws from a
    pixel that is not opaque (``alpha``: a transparent picture's, ``_colour_and_alpha``;
    where straight and premultiplied alpha differ: within the widest support, a Lanczos-3
    downscale's or 4 source pixels, of one)."""
    from PIL import Image
    from scipy.ndimage import maximum_filter

    clear = alpha[..., 0] < 255.0  # not opaque
    height, width = clear.shape
    reach = math.ceil(max(4.0, 3.0 * width / size[0], 3.0 * height / size[1])) + 1
    near = maximum_filter(clear, size=2 * reach + 1).astype(np.float32)
    return np.asarray(Image.fromarray(near, "F").resize(size, Image.Resampling.BOX)) > 0


def _resize(x: np.ndarray, size: tuple[int, int], how: str) -> np.ndarray:
    """A float (height, width, channels) plane resized to ``size`` (width, height) by a
    Pillow filter or an OpenCV interpolation (``CV_RESIZES``), in 0..255."""
    import cv2
    from PIL import Image

    w, h = size
    if how in CV_RESIZES:
        out = cv2.resize(np.ascontiguousarray(x, np.float32), size, interpolation=getattr(cv2, how))
        return np.clip(out, 0.0, 255.0).reshape(h, w, -1)
    levels = np.rint(x).astype(np.uint8)
    img = Image.fromarray(levels[..., 0], "L") if x.shape[-1] == 1 else Image.fromarray(levels)
    return np.asarray(img.resize(size, Image.Resampling[how]), np.float32).reshape(h, w, -1)


def _colour_and_alpha(src: Signature) -> tuple[np.ndarray, np.ndarray]:
    """A transparent picture's straight colour (0 under alpha 0, where its grounds do not
    tell it) and its (height, width, 1) alpha, from its pixels on white (c a + 255 (1 - a))
    and on black (c a), in 0..255."""
    white, black = src.native
    alpha = np.clip(255.0 - (white - black).max(-1, keepdims=True), 0.0, 255.0)
    seen = alpha > 0
    return np.where(seen, np.clip(black * 255.0 / np.where(seen, alpha, 1.0), 0, 255), 0.0), alpha


def _srgb_decoded(x: np.ndarray) -> np.ndarray:
    """sRGB levels (0..255) as linear light (0..1)."""
    x = x / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _srgb_encoded(y: np.ndarray) -> np.ndarray:
    """Linear light (0..1) as sRGB levels (0..255)."""
    y = np.clip(y, 0.0, 1.0)
    return 255.0 * np.where(y <= 0.0031308, 12.92 * y, 1.055 * y ** (1 / 2.4) - 0.055)


def _in_linear_light(src: Signature, parts: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """``src``'s colour sRGB-decoded and, for a transparent picture (``parts``: its
    ``_colour_and_alpha``), weighted by its alpha, which follows as a fourth channel:
    (height, width, 3 or 4), what a resize in linear light (as GIMP and libvips do)
    resamples."""
    if parts is None:
        return _srgb_decoded(src.native[0])
    colour, alpha = parts
    return np.concatenate([_srgb_decoded(colour) * alpha / 255.0, alpha / 255.0], -1)


def _linear(light: np.ndarray, size: tuple[int, int], how: str, grounds: int) -> list[np.ndarray]:
    """A picture in linear light (``_in_linear_light``) resized to ``size`` by Pillow's
    filter ``how``, divided by its alpha and encoded again, on the first ``grounds``
    grounds."""
    from PIL import Image

    filt = Image.Resampling[how]
    bands = [
        Image.fromarray(np.ascontiguousarray(light[..., i]), "F") for i in range(light.shape[-1])
    ]
    out = np.stack([np.asarray(band.resize(size, filt)) for band in bands], -1)
    if light.shape[-1] == 3:
        return [_srgb_encoded(out)][:grounds]
    a = np.clip(out[..., 3:], 0.0, 1.0)
    c = _srgb_encoded(np.where(a > 0, out[..., :3] / np.maximum(a, 1e-6), 0.0))
    return [c * a + 255.0 * (1.0 - a), c * a][:grounds]


def _straight(parts, dst: Signature, how: str, grounds: int) -> list[np.ndarray]:
    """A straight-alpha resize of a transparent picture (``parts``: its
    ``_colour_and_alpha``) to ``dst``'s size: its colour and alpha resized apart, so the
    colour under alpha 0 (which a signature does not keep: a colour key such as magenta,
    black, white) bleeds into the edges. That colour enters linearly, so it is fitted, one
    per channel, by least squares to ``dst``'s edges."""
    colour, alpha = parts
    c = _resize(colour, dst.size, how)
    a = _resize(alpha, dst.size, how) / 255.0
    weight = _resize(255.0 * (alpha == 0), dst.size, how) / 255.0 * a  # hidden colour's share
    bases = [c * a + 255.0 * (1.0 - a), c * a]  # on white, on black, without that colour
    pairs = list(zip(dst.native, bases, strict=False))
    num = sum(((y - base) * weight).sum((0, 1)) for y, base in pairs)
    den = len(pairs) * float((weight * weight).sum())
    hidden = np.clip(num / den, 0.0, 255.0) if den > 0 else 0.0
    return [base + hidden * weight for base in bases[:grounds]]


def jpeg_of(a: Signature, b: Signature, rule: NearRule) -> bool:
    """Two icons of one size, one opaque and a JPEG of the other: the other's pixels on
    white, encoded, are it (``_encoded_fits``). Only the encoded trial: two drawings a pixel
    or two apart (two flags, one with a one-pixel star) fit as they are, while encoding
    moves dozens of a small icon's pixels. Screened by their mean level difference on white
    (``jpeg_screen_levels``)."""
    screen = rule.jpeg_screen_levels
    if screen is not None and float(np.abs(a.native[0] - b.native[0]).mean()) > screen:
        return False
    return any(len(dst.native) == 1 and _encoded_fits(src.native[0], dst, rule)
               for src, dst in ((a, b), (b, a)))  # fmt: skip


def _webp(src: Signature, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """A transparent icon's own pixels after a lossy WebP encode and decode at ``quality``
    (libwebp through Pillow), on white and on black: its colour and alpha
    (``_colour_and_alpha``; the colour under alpha 0, which a signature does not keep, as
    0: libwebp does not keep it either)."""
    from PIL import Image

    rgba = np.rint(np.concatenate(_colour_and_alpha(src), -1)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "WEBP", quality=quality)
    x = np.asarray(Image.open(buf).convert("RGBA"), np.float32)
    alpha = x[..., 3:] / 255.0
    return x[..., :3] * alpha + 255.0 * (1.0 - alpha), x[..., :3] * alpha


def webp_of(a: Signature, b: Signature, rule: NearRule) -> bool:
    """Two transparent icons of one size, one a lossy WebP of the other (a WebP keeps
    alpha): the other's own pixels, encoded at one of ``WEBP_QUALITIES``, are it on both
    grounds to ``jpeg_of``'s bound (at most ``one_size_max_pixels`` over
    ``one_size_levels``). libwebp codes colour at half resolution, so at a small icon's
    coloured edges the encode moves more pixels, further, than ``icons_differ`` allows two
    transparent icons (``icon_max_levels`` above all); as for a JPEG, only the encoded
    trial tells it from another drawing. Not asked of opaque icons, held to no
    ``icon_max_levels``: they keep their WebPs without it. A WebP keeps the alpha itself
    (libwebp codes it losslessly at its default alpha quality): two icons whose alpha
    differs anywhere are no WebP of each other, though an outline's alpha a few dozen levels
    apart can stay within the colour bound on black. Screened as ``jpeg_of`` is."""
    screen = rule.jpeg_screen_levels
    if a.alpha is None or b.alpha is None or not np.array_equal(a.alpha, b.alpha):
        return False  # a lossy WebP keeps alpha as it was (libwebp's default alpha quality)
    if screen is not None and float(np.abs(a.native[0] - b.native[0]).mean()) > screen:
        return False
    return any(
        max(_pixels_over(x, y, rule) for x, y in zip(_webp(src, q), dst.native, strict=True))
        <= rule.one_size_max_pixels
        for src, dst in ((a, b), (b, a))
        for q in WEBP_QUALITIES
    )


def reencoded(a: Signature, b: Signature, rule: NearRule, jpeg: bool = True) -> bool:
    """Two icons of one size, one a re-encode of the other: one opaque (a JPEG keeps no
    alpha) and the other's pixels on white that one's to ``_encoded_fits``' bound as they
    are or, with ``jpeg``, a JPEG of them (``jpeg_of``); or a lossy WebP of the other
    (``webp_of``)."""
    if any(len(x.native) == 1 for x in (a, b)):
        if _pixels_over(a.native[0], b.native[0], rule) <= rule.one_size_max_pixels:
            return True
        if jpeg and jpeg_of(a, b, rule):
            return True
    return webp_of(a, b, rule)


def _moved_changes(x: np.ndarray, y: np.ndarray, move: int, levels: float) -> np.ndarray:
    """Per whole move of y by up to ``move`` pixels per axis (edges repeated), per pixel of
    x: whether every pixel of y's moved 3x3 neighbourhood differs by more than ``levels``
    in some channel."""
    r = move + 1
    padded = np.pad(y, ((r, r), (r, r), (0, 0)), mode="edge")
    diff = np.abs(sliding_window_view(padded, x.shape)[:, :, 0] - x).max(-1)
    return sliding_window_view(diff, (3, 3), axis=(0, 1)).min((-2, -1)) > levels


def icons_differ(a: Signature, b: Signature, rule: NearRule) -> bool:
    """Two icons of one size, by their own pixels (``icon_*`` bounds of the rule): at every
    move more than ``icon_max_share`` of their content changed beyond a one-pixel shift, on
    either ground both carry. Content: the pixels further than ``icon_levels`` from the
    ground in either icon on either ground (a small drawing on a large empty canvas is
    judged on the drawing). Levels are not fitted: a recoloured icon is another icon. Two
    transparent icons are held to ``transparent_levels`` and ``transparent_max_share``
    instead (neither is a JPEG, which keeps no alpha) unless one is the other reduced to a
    palette (``palette_reduced``), and must also be within ``icon_max_levels`` everywhere
    at that move (``_largest_differences``). Unmoved first: most copies fit there, and it
    costs a fifth of every move."""
    grounds = range(min(len(a.native), len(b.native)))
    content = np.zeros(a.native[0].shape[:2], dtype=bool)
    for g, ground in zip(grounds, (255.0, 0.0), strict=False):
        for x in (a.native[g], b.native[g]):
            content |= np.abs(x - ground).max(-1) > rule.icon_levels
    levels, share = rule.icon_levels, rule.icon_max_share
    if len(grounds) > 1 and not palette_reduced(a, b, rule):
        levels, share = rule.transparent_levels, rule.transparent_max_share
    for move in sorted({0, rule.icon_move}):
        changed = np.zeros(1, dtype=bool)
        for g in grounds:
            x, y = a.native[g], b.native[g]
            changed = changed | _moved_changes(x, y, move, levels)
            changed = changed | _moved_changes(y, x, move, levels)[::-1, ::-1]
        fits = changed.sum((-2, -1)) <= share * max(int(content.sum()), 1)
        if fits.any() and len(grounds) > 1:
            fits &= _largest_differences(a, b, move) <= rule.icon_max_levels
        if fits.any():
            return False
    return True


def _colour_codes(s: Signature) -> np.ndarray:
    """Per pixel of an icon, the index of its colour (on white and, transparent, on black:
    its colour with its alpha) among the icon's distinct colours."""
    planes = np.concatenate(s.native, -1).astype(np.uint8)
    return np.unique(planes.reshape(-1, planes.shape[-1]), axis=0, return_inverse=True)[1].ravel()


def palette_reduced(a: Signature, b: Signature, rule: NearRule) -> bool:
    """Two icons of one size, one the other reduced to a palette (an octree or median-cut
    quantizer, a low-colour version a package ships): it has at most
    ``palette_max_colours`` colours, fewer than the other, and its pixels are a function of
    the other's (every pixel of one colour there has one colour here) but for at most
    ``palette_max_strays`` of them (nearly clear pixels: colours that differ under alpha 1-3
    look alike here, and a quantizer told them apart)."""
    few, many = sorted((_colour_codes(a), _colour_codes(b)), key=np.max)
    n = int(few.max()) + 1
    if n > rule.palette_max_colours or n == many.max() + 1:
        return False
    pairs, counts = np.unique(many * n + few, return_counts=True)
    kept = np.zeros(many.max() + 1, np.int64)  # per colour of many: pixels of its commonest image
    np.maximum.at(kept, pairs // n, counts)
    return many.size - kept.sum() <= rule.palette_max_strays * many.size


def _largest_differences(a: Signature, b: Signature, move: int) -> np.ndarray:
    """Per whole move (dy, dx) of up to ``move`` pixels per axis, indexed as
    ``_moved_changes`` indexes it (a[k] beside b[k + (dy, dx)]), the largest channel
    difference of two icons' overlap there on the grounds both carry."""
    h, w = a.native[0].shape[:2]
    n = 2 * move + 1
    out = np.zeros((n, n), dtype=np.float32)
    for i, j in np.ndindex(n, n):
        dy, dx = i - move, j - move
        y0, y1, x0, x1 = max(0, -dy), min(h, h - dy), max(0, -dx), min(w, w - dx)
        for x, y in zip(a.native, b.native, strict=False):
            apart = np.abs(x[y0:y1, x0:x1] - y[y0 + dy : y1 + dy, x0 + dx : x1 + dx])
            out[i, j] = max(out[i, j], float(apart.max(initial=0.0)))
    return out

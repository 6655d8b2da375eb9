"""Step 1 of dedup: the fingerprint of one decoded image, computed by ``image_decode`` so
that no later step decodes again.

- ``pixel_hash``: 128-bit xxh3 of the size, the RGB pixels flattened on white and, for a
  picture with transparency, its alpha (the exact-dedup key: colour under alpha 0 is no
  pixel. Not cryptographic: a crafted collision could only make two samples one group);
- ``phash``: 64-bit perceptual hash of the <= 512 px grayscale copy (candidate search);
- ``signature``: the bytes the near rule compares (``compare.py``; ``pack_signature``): the
  antialiased 48x48 gray thumbnail the crop search compares, the size (a match must explain
  both), area-averaged 8x8 chroma (a red and a blue shape of one luminance); the content
  box's thumbnail for a picture whose content sits in a small part of it (one line of text
  on a page); the trimmed pHash and trim box, the second candidate key (a padded icon keeps
  its content, not its canvas; the box tells whether a pair keeps its content at one
  scale); the crop pHashes, the third (a crop of a picture that fills its canvas keeps
  neither of the others); the thumbnail on black for a picture with transparency (two such
  must agree on both grounds); and the own pixels of a picture of at most
  ``NATIVE_MAX_SIDE`` px a side, so a pad or crop of an icon is compared pixel for pixel,
  in colour, instead of through two differently resampled thumbnails (and, at candidate
  time, keyed by ``icon_keys``); and the pHash's drift (``phash_drift``: how many of its
  bits a resample by another filter moves, large for a flat picture whose pHash is noise).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import accumulate, pairwise
from typing import NamedTuple

import numpy as np

SIGNATURE_SIDE = 48
CHROMA_SIDE = 8
ALPHA_TAG = b"alpha:"  # the pixel hash's alpha part follows it (see fingerprint)
# The signature: HEAD (tag, thumbnail side, width, height, content box area in 1/65535 of
# the picture, trimmed pHash, trim box width and height, flags, crop key count, the pHash's
# drift), then the gray thumbnail, the Cb and Cr 8x8 planes, the content box's and the
# on-black thumbnails (where the flags say), the crop pHashes (uint64) and, to the end, the
# own pixels: NATIVE (width, height, planes: 3 RGB on white, 4 and alpha) and the planes.
# Little-endian.
HEAD = struct.Struct("<2sBIIHQHHBBB")
SIGNATURE_TAG = b"S3"
NATIVE = struct.Struct("<HHB")
TOUCH_X, TOUCH_Y, HAS_TRIM, HAS_CONTENT, HAS_BLACK = 1, 2, 4, 8, 16
# Content box detection on a <= 192 px BOX-filtered copy (JPEG noise averages out): content
# is what is further from the border's median than max(12 levels, 25% of the largest
# deviation); a box covering 30% of the picture or more gets no content part (the whole
# thumbnail resolves it); the box grows by 5% of its side plus 2/128 of the picture's
# longer side per side, so a resized copy's box still contains all of the content.
CONTENT_SCAN_SIDE = 192
CONTENT_MIN_CONTRAST = 12.0
CONTENT_REL_CONTRAST = 0.25
CONTENT_MAX_AREA = 0.3
CONTENT_PAD = 0.05
CONTENT_MARGIN = 2 / 128
# Trim before the pHash: when at least TRIM_MIN_BORDER of the border pixels are within
# TRIM_CONTRAST levels of its median, the picture is cut to the box of what differs more,
# unless that box is under TRIM_MIN_SIDE px a side (too little to hash).
TRIM_CONTRAST = 32
TRIM_MIN_BORDER = 0.9
TRIM_MIN_SIDE = 8
# Crop keys: the pHashes of the picture cut to CROP_KEEP of each side at its four corners
# and its centre, which a crop keeping ~90-95% of each side matches within the pair radius
# more often than the whole picture's pHash (docs/DEDUP.md).
CROP_KEEP = 0.925
CROP_ANCHORS = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.5, 0.5))
CROP_KEY_GAP = 3.0  # a cut is box-reduced to within this many times 32 px before its pHash
NATIVE_MAX_SIDE = 64  # an icon: at most 16 KB
# a thumbnail within this range of levels shows nothing: a white drawing on a transparent
# canvas is blank on white, and its keys are taken on black (``drawn_on_black``; the rule
# compares it there too: ``Signature.on_black``)
BLANK_LEVELS = 8
INFO_SIDE = 64  # gray thumbnail side for the information score (``low_information``)
ICON_KEY_CONTRAST = 16  # an icon key's content: further than this from its border's tone
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class Fingerprint:
    pixel_hash: str
    phash: str
    signature: str  # hex of the signature bytes
    information: float  # std / 255 of an INFO_SIDE thumbnail, on the ground its keys are on


class TrimmedContent(NamedTuple):
    """The second candidate key and the content's size: the pHash of the picture trimmed to
    its content, the trim box's sides in picture pixels and whether it touches the
    picture's border across (left or right) and down (top or bottom)."""

    phash: int
    width: int
    height: int
    touches_x: bool
    touches_y: bool


class EvalImage(NamedTuple):
    """The fingerprint of an evaluation image that training images must not match."""

    phash: str
    signature: str
    pixel_hash: str
    information: float | None = None


@dataclass(frozen=True)
class Signature:
    """A parsed signature."""

    gray: bytes  # side*side grayscale thumbnail
    size: tuple[int, int]  # (width, height) of the decoded image
    chroma: np.ndarray  # (2, 8, 8) float32 Cb, Cr
    content: bytes | None = None  # thumbnail of the content box, same side as gray
    content_area: float = 1.0  # the content box's share of the picture
    trimmed: TrimmedContent | None = None
    crops: tuple[int, ...] = ()  # crop pHashes (``crop_keys``)
    black: bytes | None = None  # gray thumbnail composited on black (with transparency)
    native_part: bytes | None = None  # NATIVE and the planes (``native``)
    phash_drift: int = 0  # ``phash_drift``: pHash bits another resampling filter moves

    @cached_property
    def native(self) -> tuple[np.ndarray, ...]:
        """The picture's own (height, width, 3) float32 pixels on white and, with alpha, on
        black (on white a pixel is c*a + 255*(1 - a), on black c*a); () for none. Decoded on
        first use: most comparisons never look at them."""
        if self.native_part is None:
            return ()
        w, h, _ = NATIVE.unpack_from(self.native_part)
        pixels = np.frombuffer(self.native_part, np.uint8, h * w * 3, NATIVE.size)
        white = pixels.astype(np.float32).reshape(h, w, 3)
        if self.alpha is None:
            return (white,)
        return white, np.clip(white - (255.0 - self.alpha[..., None]), 0.0, 255.0)

    @cached_property
    def alpha(self) -> np.ndarray | None:
        """A transparent icon's own (height, width) float32 alpha; None for none (opaque, or
        no pixels of its own)."""
        if self.native_part is None:
            return None
        w, h, planes = NATIVE.unpack_from(self.native_part)
        if planes == 3:
            return None
        at = NATIVE.size + h * w * 3
        return np.frombuffer(self.native_part, np.uint8, h * w, at).astype(np.float32).reshape(h, w)

    @property
    def blank_on_white(self) -> bool:
        """A transparent picture that shows nothing on white (``blank``): a white drawing,
        keyed on black (``drawn_on_black``), or a veil; the rule compares it on black
        (``on_black``)."""
        return self.black is not None and blank(self.gray)

    def on_black(self) -> Signature:
        """The signature with its two grounds exchanged (the content box and trim box, not
        comparable across grounds, left out): how the rule compares a white drawing."""
        return replace(self, gray=self.black, black=self.gray, content=None, trimmed=None)

    @property
    def trim_phash(self) -> int | None:
        return None if self.trimmed is None else self.trimmed.phash

    @property
    def side(self) -> int:
        return math.isqrt(len(self.gray))

    def pixels(self, part: str = "gray") -> np.ndarray:
        """A thumbnail part ("gray", "content" or "black") as a float32 square."""
        data = getattr(self, part)
        return np.frombuffer(data, np.uint8).astype(np.float32).reshape(self.side, self.side)


def fingerprint(rgb, gray, alpha=None, *, size=None, pixel_hash: str | None = None) -> Fingerprint:
    """The fingerprint of a flattened RGB Pillow image; ``gray``: its "L" copy at a longer
    side of <= 512 px (the pHash is taken there, so it does not depend on the scale);
    ``alpha``: its "L" alpha channel when the decoded picture had one (a fully opaque one
    counts as none, so an opaque RGBA picture and its RGB re-save stay exact copies).
    A picture too large to flatten whole passes its reduced copy as ``rgb`` with its own
    ``size`` and the ``pixel_hash`` taken strip by strip (``ops/image_decode.py``)."""
    import xxhash
    from PIL import Image

    if pixel_hash is None:
        digest = xxhash.xxh3_128(f"{rgb.width}x{rgb.height}:".encode())
        digest.update(rgb.tobytes())
        if alpha is not None and alpha.getextrema()[0] < 255:
            digest.update(ALPHA_TAG + alpha.tobytes())
        pixel_hash = digest.hexdigest()
    width, height = size or rgb.size
    chroma = rgb.resize((CHROMA_SIDE, CHROMA_SIDE), Image.Resampling.BOX, reducing_gap=1.0)
    _, cb, cr = chroma.convert("YCbCr").split()
    black = on_black(gray, alpha)
    white_thumb = thumbnail(gray, SIGNATURE_SIDE).tobytes()
    black_thumb = None if black is None else thumbnail(black, SIGNATURE_SIDE).tobytes()
    # a white drawing: its keys and information on black, or every such picture would share
    # one pHash and crowd one bucket with all its pairs, and score as a blank canvas
    seen = black if black_thumb and drawn_on_black(white_thumb, black_thumb) else gray
    phash = phash_of(seen)
    drift = phash_drift(seen, phash)
    native = None
    if max(width, height) <= NATIVE_MAX_SIDE and rgb.size == (width, height):
        native = np.asarray(rgb), None if black is None else np.asarray(alpha)
    signature = pack_signature(
        white_thumb,
        width,
        height,
        cb.tobytes() + cr.tobytes(),
        content_thumbnail(seen, SIGNATURE_SIDE),
        trim_part(seen, width, height, phash),
        black_thumb,
        crop_keys(seen),
        native,
        drift,
    )
    small = seen.resize((INFO_SIDE, INFO_SIDE), Image.Resampling.BOX)
    information = float(np.asarray(small, dtype=np.float32).std() / 255.0)
    return Fingerprint(pixel_hash, f"{phash:016x}", signature.hex(), information)


def blank(thumb: bytes) -> bool:
    """Whether a gray thumbnail (bytes) shows nothing: within ``BLANK_LEVELS`` levels."""
    return int(np.ptp(np.frombuffer(thumb, np.uint8))) <= BLANK_LEVELS


def drawn_on_black(white: bytes, black: bytes) -> bool:
    """Whether a transparent picture, from its gray thumbnails on white and on black, is a
    white drawing: blank on white, not on black."""
    return blank(white) and not blank(black)


def phash_of(gray, reducing_gap: float | None = None, resample=None) -> int:
    """The 64-bit pHash of a Pillow "L" image as imagehash computes it (a 32x32 Lanczos
    resample, its 2-D DCT, the 8x8 lowest frequencies against their median, row by row,
    first bit highest); ``reducing_gap``: Pillow's, a box reduce by whole steps to within
    that many times 32 px before the resample; ``resample``: another filter than Lanczos."""
    import scipy.fft
    from PIL import Image

    how = Image.Resampling.LANCZOS if resample is None else resample
    small = gray.resize((32, 32), how, reducing_gap=reducing_gap)
    dct = scipy.fft.dct(scipy.fft.dct(np.asarray(small, np.float64), axis=0), axis=1)
    low = dct[:8, :8]
    return int.from_bytes(np.packbits(low > np.median(low)).tobytes(), "big")


def phash_drift(gray, phash: int) -> int:
    """How many bits of ``phash`` (of the Pillow "L" image ``gray``) a triangle filter instead
    of Lanczos for the 32x32 resample moves. Most pictures' pHash moves 0-2 bits; a flat,
    nearly symmetric picture's DCT coefficients sit within a few units of their median, and
    its pHash moves 20-32 bits under any resample (a resize of it as much): the rule weighs
    such a pair's distance less its drift (``NearRule.evidence``)."""
    from PIL import Image

    return (phash ^ phash_of(gray, resample=Image.Resampling.BILINEAR)).bit_count()


def icon_keys(sig: Signature) -> tuple[int, int, int]:
    """The fourth to sixth candidate keys, of an icon (a signature with its own pixels): the
    64-bit average hashes (``average_hash``) of its gray pixels on white cut to what differs
    from its border's median tone by more than ``ICON_KEY_CONTRAST`` (its content, which a
    pad or a crop keeps), of the whole canvas (which a resize or a JPEG keeps, where the
    content box may grow by the encode's noise) and, for a transparent icon, of the whole
    canvas on black (a straight-alpha resize, as OpenCV's of an RGBA array, draws the
    colour under alpha 0, mostly black, into the edges: on white they darken, on black
    they stay); (0, 0, 0) for no own pixels, a key 0 for no content or no transparency.
    The pHash of a small simple icon is a 32x32 upsample's: a resize, a JPEG or a crop
    moves it by 12-36 bits; the means move far less."""
    if sig.native_part is None:
        return 0, 0, 0
    g = sig.native[0] @ LUMA
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    mask = np.abs(g - np.median(border)) > ICON_KEY_CONTRAST
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    content = (
        0 if rows.size == 0 else average_hash(g[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])
    )
    black = average_hash(sig.native[1] @ LUMA) if len(sig.native) > 1 else 0
    return content, average_hash(g), black


def average_hash(g: np.ndarray) -> int:
    """The 64-bit average hash of a float gray array: 8x8 box means (fractional footprints),
    each bit a mean above the mean of all 64, row by row."""
    from PIL import Image

    cells = np.asarray(
        Image.fromarray(np.ascontiguousarray(g, np.float32), "F").resize(
            (8, 8), Image.Resampling.BOX
        )
    )
    return int.from_bytes(np.packbits(cells > cells.mean()).tobytes(), "big")


def on_black(gray, alpha):
    """The "L" copy of the picture composited on black, from its "L" copy flattened on white
    and its alpha (None without transparency): on white a pixel is c*a + 255*(1 - a), on
    black c*a, and the box reduction to the gray copy's size is linear."""
    from PIL import Image

    if alpha is None or alpha.getextrema()[0] == 255:
        return None
    a = np.asarray(alpha.resize(gray.size, Image.Resampling.BOX), dtype=np.int16)
    black = np.clip(np.asarray(gray, dtype=np.int16) - (255 - a), 0, 255).astype(np.uint8)
    return Image.fromarray(black, "L")


def crop_keys(gray) -> tuple[int, ...]:
    """The pHashes of a Pillow "L" image cut at CROP_ANCHORS to CROP_KEEP of each side and,
    where that keeps more than all but two pixels of a side (pictures under 20 px, where
    one pixel is more than CROP_KEEP's step), also cut by two pixels per axis; each cut
    reduced by whole box steps to within ``CROP_KEY_GAP`` times the hash's 32 px first
    (a third of a full Lanczos resample's cost; keys 0.2 bits from its on average)."""
    w, h = gray.size
    sizes = [(max(1, round(w * CROP_KEEP)), max(1, round(h * CROP_KEEP)))]
    if w - 2 < sizes[0][0] or h - 2 < sizes[0][1]:
        sizes.append((max(1, min(w - 2, sizes[0][0])), max(1, min(h - 2, sizes[0][1]))))
    keys = []
    for cw, ch in sizes:
        for ax, ay in CROP_ANCHORS:
            x, y = round(ax * (w - cw)), round(ay * (h - ch))
            keys.append(phash_of(gray.crop((x, y, x + cw, y + ch)), CROP_KEY_GAP))
    return tuple(keys)


def trim_part(gray, width: int, height: int, phash: int) -> TrimmedContent:
    """The trimmed pHash of a Pillow "L" image (of a ``width`` x ``height`` picture, whose
    own pHash is ``phash``): when its border is one tone (a plain or flattened transparent
    ground), of the box of what differs from that tone; the box's sides in picture pixels
    and whether it touches the border."""
    a = np.asarray(gray, dtype=np.int16)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    tone = int(np.median(border))
    mask = np.abs(a - tone) > TRIM_CONTRAST
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if (
        (np.abs(border - tone) <= TRIM_CONTRAST).mean() < TRIM_MIN_BORDER
        or rows.size == 0
        or min(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 < TRIM_MIN_SIDE
    ):
        return TrimmedContent(phash, width, height, True, True)
    box = int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
    fx, fy = width / gray.width, height / gray.height
    return TrimmedContent(
        phash_of(gray.crop(box)),
        round((box[2] - box[0]) * fx),
        round((box[3] - box[1]) * fy),
        box[0] == 0 or box[2] == gray.width,
        box[1] == 0 or box[3] == gray.height,
    )


def thumbnail(gray, side: int, box: tuple[float, float, float, float] | None = None):
    """side x side thumbnail of a Pillow "L" image (or of ``box`` of it): an integer reduce
    to within 2x of the side, then bilinear, whose support widens with the downscale.
    Not Pillow's BOX filter: it weighs each source pixel 1 or 0 by where its centre falls,
    so a picture and its resized copy disagree by up to a source pixel at every edge, which
    is past the rule's bound for thin lines and glyphs."""
    from PIL import Image

    return gray.resize((side, side), Image.Resampling.BILINEAR, box=box, reducing_gap=2.0)


def content_thumbnail(gray, side: int) -> tuple[bytes, float] | None:
    """(thumbnail of the content box, the box's share of the picture) of a Pillow "L" image,
    or None when it has no content, the box is not small, or it has fewer than side * side
    pixels (an upscale would be blurred by the picture's own downscale)."""
    from PIL import Image

    scale = CONTENT_SCAN_SIDE / max(gray.size)
    small = gray
    if scale < 1:
        size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
        small = gray.resize(size, Image.Resampling.BOX)
    a = np.asarray(small, dtype=np.float32)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    deviation = np.abs(a - np.median(border))
    mask = deviation > max(CONTENT_MIN_CONTRAST, CONTENT_REL_CONTRAST * float(deviation.max()))
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    area = (y1 - y0) * (x1 - x0) / a.size
    if area >= CONTENT_MAX_AREA:
        return None
    margin = CONTENT_MARGIN * max(a.shape)
    pad_y, pad_x = CONTENT_PAD * (y1 - y0) + margin, CONTENT_PAD * (x1 - x0) + margin
    fy, fx = gray.height / a.shape[0], gray.width / a.shape[1]
    box = (
        max(0.0, (x0 - pad_x) * fx),
        max(0.0, (y0 - pad_y) * fy),
        min(float(gray.width), (x1 + pad_x) * fx),
        min(float(gray.height), (y1 + pad_y) * fy),
    )
    if (box[2] - box[0]) * (box[3] - box[1]) < side * side:
        return None
    return thumbnail(gray, side, box).tobytes(), area


def pack_signature(
    gray: bytes,
    width: int,
    height: int,
    cbcr: bytes,
    content: tuple[bytes, float] | None = None,
    trimmed: TrimmedContent | None = None,
    black: bytes | None = None,
    crops: tuple[int, ...] = (),
    native: tuple[np.ndarray, np.ndarray | None] | None = None,
    drift: int = 0,
) -> bytes:
    """The signature bytes (``HEAD``); ``gray``, the content box's thumbnail and ``black``
    are side*side bytes, ``cbcr`` the 8x8 Cb plane then the 8x8 Cr plane, ``native`` uint8
    arrays: (height, width, 3) RGB on white and the (height, width) alpha or None."""
    if len(cbcr) != 2 * CHROMA_SIDE * CHROMA_SIDE:
        raise ValueError(f"chroma must be 2 x {CHROMA_SIDE}x{CHROMA_SIDE} bytes, got {len(cbcr)}")
    side = math.isqrt(len(gray))
    if side * side != len(gray) or not 16 <= side <= 255:
        raise ValueError(f"the gray thumbnail must be square, 16x16 to 255x255, got {len(gray)}")
    if any(x is not None and len(x) != len(gray) for x in (content and content[0], black)):
        raise ValueError("a thumbnail part must have the gray thumbnail's size")
    t = trimmed or TrimmedContent(0, 0, 0, False, False)
    flags = (TOUCH_X * t.touches_x | TOUCH_Y * t.touches_y | HAS_TRIM * (trimmed is not None)
             | HAS_CONTENT * (content is not None) | HAS_BLACK * (black is not None))  # fmt: skip
    area = 0 if content is None else round(min(max(content[1], 0.0), 1.0) * 65535)
    sides = min(t.width, 65535), min(t.height, 65535)
    out = [HEAD.pack(SIGNATURE_TAG, side, width, height, area, t.phash, *sides, flags, len(crops),
                     drift),
           gray, cbcr, content[0] if content else b"", black or b"",
           struct.pack(f"<{len(crops)}Q", *crops)]  # fmt: skip
    if native is not None:
        white, alpha = native
        out.append(NATIVE.pack(white.shape[1], white.shape[0], 3 if alpha is None else 4))
        out += [np.ascontiguousarray(x, dtype=np.uint8).tobytes() for x in native if x is not None]
    return b"".join(out)


def parse_signature(sig: bytes) -> Signature:
    """The parts of a signature; ValueError for bytes ``pack_signature`` did not write."""
    try:
        tag, side, width, height, area, phash, tw, th, flags, count, drift = HEAD.unpack_from(sig)
        n = side * side
        sizes = n, 2 * CHROMA_SIDE**2, n * bool(flags & HAS_CONTENT), n * bool(flags & HAS_BLACK)
        at = list(accumulate((HEAD.size, *sizes, 8 * count)))
        native = sig[at[-1] :]
        w, h, planes = NATIVE.unpack_from(native) if native else (0, 0, 0)
        ok = tag == SIGNATURE_TAG and side >= 16 and at[-1] <= len(sig)
        ok = ok and len(native) == (NATIVE.size + w * h * planes if native else 0)
    except struct.error:
        ok = False
    if not ok:
        raise ValueError(f"not a dedup signature ({len(sig)} bytes); rebuild with image_decode")
    gray, cbcr, content, black, crops = (sig[i:j] for i, j in pairwise(at))
    touches = bool(flags & TOUCH_X), bool(flags & TOUCH_Y)
    return Signature(
        gray,
        (width, height),
        np.frombuffer(cbcr, np.uint8).astype(np.float32).reshape(2, CHROMA_SIDE, CHROMA_SIDE),
        content or None,
        area / 65535 if content else 1.0,
        TrimmedContent(phash, tw, th, *touches) if flags & HAS_TRIM else None,
        struct.unpack(f"<{count}Q", crops),
        black or None,
        native or None,
        drift,
    )

"""Decode every image of a candidate once and compute all per-image features from it.

Decoding dominates a build's cost, so features are computed once per image and stored on
its :class:`ImageRecord`: the image filters, dedup and the token budget all read them and
never decode again. This operator computes them for every image; an image filter that
finds them missing (listed before ``image_decode``, or in a recipe without it) computes
them itself with the recipe's decode settings (``image_features.py``). Decoded arrays never
leave the call; rows keep carrying the original encoded bytes.

Checks, in order, per image: zero bytes -> ``empty_image``; unknown magic bytes ->
``unknown_format``; the header's claims beyond the memory budget or the recipe's pixel cap
(read before any pixel is decoded, ``image_open.py``) -> ``decompression_bomb``; any error
of the decode -> ``undecodable``.

Large pictures: a picture whose whole-picture feature work (about
``FULL_PATH_BYTES_PER_PIXEL`` per pixel: flattened copies, grey copy, pixel bytes) would not
fit the budget is flattened one strip of rows at a time: the pixel hash and the <= 512 px
grayscale copy come out as the whole picture gives them (so every feature but the 8x8
chroma, taken from a box-reduced copy, is the same), and the signature keeps the picture's
own size. A JPEG decoded reduced (``image_open.py``) hashes its reduced pixels, tagged with
the scale.

Transparency rule (``mindvl.common.pictures.flatten_to_rgb``, the trainer's too): an image
with alpha (RGBA, LA, PA, or P/L/RGB with a ``transparency`` entry) is composited onto opaque
white (255, 255, 255) and becomes RGB; every other mode is converted to RGB directly (16-bit
and float greyscale are scaled to 8 bits first). All features are computed from that
flattened RGB picture, so a transparent icon and the same icon on white are the same image
to every later stage, except the exact-dedup key, which also hashes the alpha channel
(``dedup.fingerprint``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import Field

from mindvl.common.config import StrictModel
from mindvl.common.pictures import flatten_to_rgb, has_alpha
from mindvl.data_engine.dedup.fingerprint import ALPHA_TAG, EvalImage, fingerprint
from mindvl.data_engine.ops.base import Operator
from mindvl.data_engine.ops.image_open import DEFAULT_DECODE_BYTES, DecodeFailure, open_within
from mindvl.data_engine.record import Candidate

BLUR_MAX_SIDE = 512  # phash and Laplacian variance are measured at this scale
# Bound of the whole-picture path's working set per pixel (decoded frame, RGBA copies of
# the alpha composite, the RGB result, its grey copy, the hashed bytes); beyond the budget
# the strip path runs instead. With the default budget every picture up to ~89 Mpixel
# takes the whole-picture path.
FULL_PATH_BYTES_PER_PIXEL = 24
STRIP_PIXELS = 1 << 22  # pixels flattened at a time on the strip path

__all__ = ["DecodeFailure", "ImageDecode", "ImageDecodeParams", "image_features", "model_picture"]


class ImageDecodeParams(StrictModel):
    max_decode_bytes: int = Field(
        default=DEFAULT_DECODE_BYTES,
        gt=0,
        description="memory one image's decode may take, judged from the header before "
        "decoding (width x height x bytes per pixel); a JPEG beyond it is decoded reduced, "
        "any other image beyond it is dropped as decompression_bomb",
    )
    max_pixels_cap: int | None = Field(
        default=None,
        gt=0,
        description="drop images whose header claims more pixels (a recipe's choice; "
        "none by default)",
    )


@dataclass(frozen=True)
class ImageFeatures:
    image_format: str
    width: int
    height: int
    pixel_hash: str
    phash: str
    signature: str
    information: float
    blur: float


def alpha_channel(img):
    """The "L" alpha channel of a decoded picture that has one (palette transparency keyed
    in); None without one, and for 16-bit and float pictures, whose key is ignored."""
    if not has_alpha(img) or img.mode.startswith("I") or img.mode == "F":
        return None
    rgba = img if img.mode in ("RGBA", "LA") else img.convert("RGBA")
    return rgba.getchannel("A")


def _gray_size(width: int, height: int) -> tuple[int, int]:
    """The size of the grayscale copy the features are taken from (longer side <= 512)."""
    scale = BLUR_MAX_SIDE / max(width, height)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _by_strips(img, tag: str, small: tuple[int, int]):
    """(pixel hash, reduced RGB copy, grayscale copy of ``small`` size) of a decoded picture
    flattened one strip of rows at a time. The hash is the one the whole flattened picture
    gives; the grayscale copy is the whole path's too (its integer reduce of the "L"
    picture, then the box resize Pillow's ``reducing_gap=2.0`` does), so only the 8x8
    chroma comes from a reduced copy."""
    import xxhash
    from PIL import Image

    width, height = img.size
    fx, fy = max(1, int(width / small[0] / 2)), max(1, int(height / small[1] / 2))
    rows = fy * max(1, STRIP_PIXELS // (width * fy))
    digest = xxhash.xxh3_128(tag.encode())
    reduced = Image.new("RGB", (-(-width // fx), -(-height // fy)))
    gray = Image.new("L", reduced.size)
    tops = range(0, height, rows)
    lowest_alpha = 255
    for top in tops:
        part = img.crop((0, top, width, min(top + rows, height)))
        alpha = alpha_channel(part)
        if alpha is not None:
            lowest_alpha = min(lowest_alpha, alpha.getextrema()[0])
        strip = flatten_to_rgb(part)
        digest.update(strip.tobytes())
        reduced.paste(strip.reduce((fx, fy)), (0, top // fy))
        gray.paste(strip.convert("L").reduce((fx, fy)), (0, top // fy))
    if lowest_alpha < 255:  # the whole path's alpha part, after all the RGB bytes
        digest.update(ALPHA_TAG)
        for top in tops:
            digest.update(
                alpha_channel(img.crop((0, top, width, min(top + rows, height)))).tobytes()
            )
    if small != (width, height):
        box = (0, 0, width / fx, height / fy)
        gray = gray.resize(small, Image.Resampling.BOX, box=box)
    return digest.hexdigest(), reduced, gray


def model_picture(data: bytes, params: ImageDecodeParams):
    """The flattened RGB picture of one encoded image for a model operator, decoded within
    the budget; one too large for the whole-picture path comes as the strip path's reduced
    copy (a longer side of at least ~1024 px). Raises :class:`DecodeFailure`."""
    opened = open_within(data, params.max_decode_bytes, params.max_pixels_cap)
    width, height = opened.size
    if opened.scale == 1 and width * height * FULL_PATH_BYTES_PER_PIXEL <= params.max_decode_bytes:
        return flatten_to_rgb(opened.image)
    return _by_strips(opened.image, "", _gray_size(*opened.image.size))[1]


def image_features(
    data: bytes, params: ImageDecodeParams | None = None, *, blur: bool = True
) -> ImageFeatures:
    """Every per-image feature of one encoded image; raises :class:`DecodeFailure`.

    ``blur=False`` skips the Laplacian variance (``blur`` is then NaN): a build computes
    it only when its recipe has a ``blur`` operator (``OpContext.blur_score``).
    """
    import cv2
    import numpy as np
    from PIL import Image

    params = params or ImageDecodeParams()
    opened = open_within(data, params.max_decode_bytes, params.max_pixels_cap)
    img, (width, height), fmt = opened.image, opened.size, opened.format
    # The grayscale features are all taken at a longer side of <= 512: the perceptual hash
    # and the blur score become scale-independent, and this is ~2x cheaper than full size.
    small = _gray_size(*img.size)
    whole = width * height * FULL_PATH_BYTES_PER_PIXEL <= params.max_decode_bytes
    if opened.scale == 1 and whole:
        rgb = flatten_to_rgb(img)
        gray = rgb.convert("L")
        if small != gray.size:
            gray = gray.resize(small, Image.Resampling.BOX, reducing_gap=2.0)
        size, pixel_hash, alpha = None, None, alpha_channel(img)
    else:
        tag = f"{width}x{height}:" if opened.scale == 1 else f"{width}x{height}/{opened.scale}:"
        pixel_hash, rgb, gray = _by_strips(img, tag, small)
        size, alpha = (width, height), None
    del img, opened
    found = fingerprint(rgb, gray, alpha, size=size, pixel_hash=pixel_hash)  # dedup's step 1
    sharpness = math.nan
    if blur:
        sharpness = float(cv2.Laplacian(np.asarray(gray), cv2.CV_32F).var(dtype=np.float64))
    return ImageFeatures(
        fmt,
        width,
        height,
        found.pixel_hash,
        found.phash,
        found.signature,
        found.information,
        sharpness,
    )


def annotate(candidate: Candidate, params: ImageDecodeParams, blur: bool) -> str | None:
    """Store every image's features on it; the drop reason of the first failing image."""
    feats = []
    for im in candidate.images:
        try:
            feats.append(image_features(im.data, params, blur=blur))
        except DecodeFailure as failure:
            return str(failure)
    for im, f in zip(candidate.images, feats, strict=True):
        im.format, im.width, im.height = f.image_format, f.width, f.height
        im.pixel_hash, im.phash, im.signature = f.pixel_hash, f.phash, f.signature
        im.information = f.information
        im.blur = f.blur if blur else None
    return None


def eval_hashes_from_images(images: Iterable[bytes]) -> list[EvalImage]:
    """Fingerprints of encoded eval images for dedup's decontamination, in input order
    (an eval image nobody can decode cannot leak either: skipped)."""
    out = []
    for data in images:
        try:
            f = image_features(data)
        except DecodeFailure:
            continue
        out.append(EvalImage(f.phash, f.signature, f.pixel_hash, f.information))
    return out


class ImageDecode(Operator):
    """Drop samples with any corrupt, empty or oversized image; annotate the rest."""

    name = "image_decode"
    Params = ImageDecodeParams

    def __call__(self, candidate: Candidate) -> str | None:
        return annotate(candidate, self.params, self.context.blur_score)

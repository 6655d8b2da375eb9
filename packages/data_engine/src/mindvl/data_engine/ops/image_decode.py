"""Decode every image of a candidate once and compute all per-image features from it.

Decoding dominates a build's cost, so this is the only operator that touches pixels: the
image filters, dedup and the token budget all read the features it stores on the
candidate (lists aligned with ``candidate.images``) and never decode again. Decoded arrays
never leave the operator; rows keep carrying the original encoded bytes.

Checks, in order, per image: zero bytes -> ``empty_image``; unknown magic bytes ->
``unknown_format``; the header's width*height above ``max_pixels_cap`` (read before any
pixel is decoded; Pillow's own ``DecompressionBombError`` is caught too) ->
``decompression_bomb``; any error of a full decode -> ``undecodable``.

Transparency rule: an image with alpha (RGBA, LA, PA, or P/L/RGB with a ``transparency``
entry) is composited onto opaque white (255, 255, 255) and becomes RGB; every other mode is
converted to RGB directly (16-bit and float greyscale are scaled to 8 bits first). All
features are computed from that flattened RGB picture, so a transparent icon and the same
icon on white are the same image to every later stage, except the exact-dedup key, which
also hashes the alpha channel (``dedup.fingerprint``).
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import Field

from mindvl.common.config import StrictModel
from mindvl.common.sample import detect_image_format
from mindvl.data_engine.dedup.fingerprint import EvalImage, fingerprint
from mindvl.data_engine.ops.base import Operator
from mindvl.data_engine.record import Candidate

BLUR_MAX_SIDE = 512  # phash and Laplacian variance are measured at this scale
INFO_SIDE = 64  # grayscale thumbnail side for the information score
WHITE = (255, 255, 255)


class ImageDecodeParams(StrictModel):
    max_pixels_cap: int = Field(
        default=64_000_000, gt=0, description="drop images whose header claims more pixels"
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


class DecodeFailure(Exception):
    """Carries the drop reason of one image."""


def has_alpha(img) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def to_8bit(img):
    """16-bit and float greyscale to 8-bit "L" by scaling, not clipping (Pillow's own
    conversion clips: a 16-bit scan would turn almost all white). Floats are read as 0..1."""
    import numpy as np
    from PIL import Image

    arr = np.asarray(img, dtype=np.float64)
    arr = arr * 255.0 if img.mode == "F" else arr / 257.0  # I;16*, I: 16-bit range
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")


def flatten_to_rgb(img):
    """RGB view of a decoded image; transparent pixels are composited onto white."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        return to_8bit(img).convert("RGB")  # (a 16-bit transparency key is ignored)
    if has_alpha(img):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def open_checked(data: bytes, max_pixels_cap: int):
    """Open, check the header's size against the cap, then fully decode (first frame)."""
    from PIL import Image

    if not data:
        raise DecodeFailure("empty_image")
    fmt = detect_image_format(data)
    if fmt is None:
        raise DecodeFailure("unknown_format")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our cap decides
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            raise DecodeFailure("decompression_bomb") from None
        except Exception:
            raise DecodeFailure("undecodable") from None
        width, height = img.size
        if width <= 0 or height <= 0:
            raise DecodeFailure("undecodable")
        if width * height > max_pixels_cap:
            raise DecodeFailure("decompression_bomb")
        try:
            img.load()
        except Image.DecompressionBombError:
            raise DecodeFailure("decompression_bomb") from None
        except Exception:
            raise DecodeFailure("undecodable") from None
    return fmt, img


def image_features(
    data: bytes, max_pixels_cap: int = 64_000_000, *, blur: bool = True
) -> ImageFeatures:
    """Every per-image feature of one encoded image; raises :class:`DecodeFailure`.

    ``blur=False`` skips the Laplacian variance (``blur`` is then NaN): a build computes
    it only when its recipe has a ``blur`` operator (``OpContext.blur_score``).
    """
    import cv2
    import numpy as np
    from PIL import Image

    fmt, img = open_checked(data, max_pixels_cap)
    rgb = flatten_to_rgb(img)
    width, height = rgb.size
    # The grayscale features are all taken at a longer side of <= 512: the perceptual hash
    # and the blur score become scale-independent, and this is ~2x cheaper than full size.
    gray = rgb.convert("L")
    scale = BLUR_MAX_SIDE / max(width, height)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        gray = gray.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    alpha = None  # 16-bit and float pictures: their transparency key is ignored (flatten)
    if has_alpha(img) and not (img.mode.startswith("I") or img.mode == "F"):
        rgba = img if img.mode in ("RGBA", "LA") else img.convert("RGBA")  # palette, keyed
        alpha = rgba.getchannel("A")
    found = fingerprint(rgb, gray, alpha)  # the dedup step's pixel hash, pHash and signature
    thumb = np.asarray(gray.resize((INFO_SIDE, INFO_SIDE), Image.Resampling.BOX), dtype=np.float32)
    information = float(thumb.std() / 255.0)
    sharpness = math.nan
    if blur:
        sharpness = float(cv2.Laplacian(np.asarray(gray), cv2.CV_32F).var(dtype=np.float64))
    return ImageFeatures(
        fmt, width, height, found.pixel_hash, found.phash, found.signature, information, sharpness
    )


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
        feats = []
        for data in candidate.images:
            try:
                feats.append(
                    image_features(data, self.params.max_pixels_cap, blur=self.context.blur_score)
                )
            except DecodeFailure as failure:
                return str(failure)
        candidate.image_formats = [f.image_format for f in feats]
        candidate.widths = [f.width for f in feats]
        candidate.heights = [f.height for f in feats]
        candidate.pixel_hashes = [f.pixel_hash for f in feats]
        candidate.phashes = [f.phash for f in feats]
        candidate.signatures = [f.signature for f in feats]
        candidate.information = [f.information for f in feats]
        candidate.blur = [f.blur for f in feats] if self.context.blur_score else []
        return None

"""Opening one encoded image within a memory budget: the header's claims decide.

Before any pixel is decoded, the header gives the width, the height and the mode; the
bytes Pillow would allocate for that frame (width x height x bytes per pixel of the mode:
1 for "1"/"L"/"P", 2 for 16-bit greyscale, 4 for every other mode, RGB included) are the
claim. A claim within ``max_decode_bytes`` is decoded at full size. A JPEG beyond it is
decoded reduced (libjpeg's DCT scaling through ``Image.draft``: 1/2, 1/4 or 1/8 per side,
the least reduction that fits). Any other image beyond it is dropped as
``decompression_bomb`` before a pixel is decoded, as is any image whose header claims more
pixels than the recipe's own ``max_pixels_cap`` (a recipe's choice; none by default).
Pillow's fixed ~179-Mpixel bomb check is replaced by these.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mindvl.common.sample import detect_image_format

DEFAULT_DECODE_BYTES = 2 << 30  # 2 GiB: a 200-Mpixel RGBA picture decodes at full size
DRAFT_SCALES = (2, 4, 8)  # what libjpeg can reduce by while decoding


class DecodeFailure(Exception):
    """Carries the drop reason of one image."""


@dataclass
class Opened:
    format: str  # detected from the bytes
    image: object  # a loaded Pillow image (reduced when ``scale`` > 1)
    size: tuple[int, int]  # width, height the header claims
    scale: int = 1  # 1: full size; else the JPEG draft's reduction per side


def pixel_bytes(mode: str) -> int:
    """Bytes per pixel Pillow stores for ``mode`` (multi-band modes take 4)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def claimed_bytes(mode: str, width: int, height: int, scale: int = 1) -> int:
    """Memory of the decoded frame the header claims, reduced ``scale`` times per side."""
    return -(-width // scale) * -(-height // scale) * pixel_bytes(mode)


@contextmanager
def _own_bomb_checks() -> Iterator[None]:
    """Pillow's pixel limit off for one open: the claim checks below replace it."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def open_within(
    data: bytes, max_decode_bytes: int = DEFAULT_DECODE_BYTES, max_pixels_cap: int | None = None
) -> Opened:
    """Check the header's claims, then decode (the first frame); raises DecodeFailure."""
    from PIL import Image

    if not data:
        raise DecodeFailure("empty_image")
    fmt = detect_image_format(data)
    if fmt is None:
        raise DecodeFailure("unknown_format")
    with _own_bomb_checks():
        try:
            img = Image.open(io.BytesIO(data))
        except Exception:
            raise DecodeFailure("undecodable") from None
        width, height = img.size
        if width <= 0 or height <= 0:
            raise DecodeFailure("undecodable")
        if max_pixels_cap is not None and width * height > max_pixels_cap:
            raise DecodeFailure("decompression_bomb")
        scale = _scale(img, width, height, max_decode_bytes)
        if scale > 1:
            img.draft(img.mode, (-(-width // scale), -(-height // scale)))
        try:
            img.load()
        except Exception:
            raise DecodeFailure("undecodable") from None
    return Opened(fmt, img, (width, height), scale)


def _scale(img, width: int, height: int, budget: int) -> int:
    """1 when the full frame fits ``budget``; else the JPEG draft reduction that fits."""
    if claimed_bytes(img.mode, width, height) <= budget:
        return 1
    if img.format == "JPEG":
        for scale in DRAFT_SCALES:
            if claimed_bytes(img.mode, width, height, scale) <= budget:
                return scale
    raise DecodeFailure("decompression_bomb")

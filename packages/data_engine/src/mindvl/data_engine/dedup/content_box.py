"""The content box of a picture that is mostly background: the bounding box of what differs
from the background, as a gray thumbnail of its own.

A one-line equation on a light page, a few short lines of text, one thin chart line: in a
48x48 thumbnail of the whole picture they are a few pixels of smudge, so "10 - 4 = ?" and
"10 - 5 = ?" look alike. Thumbnailed on their own they are resolved several times finer.
A crop of a few percent per side keeps the content box (it cuts background), a resize or a
re-encode keeps it too, so near duplicates keep agreeing on it.

Detection is done on a <= 192 px BOX-filtered copy (JPEG noise and texture average out):
background = median of the border pixels; content = pixels further from it than
``max(CONTENT_MIN_CONTRAST, CONTENT_REL_CONTRAST * the largest deviation)``.
"""

from __future__ import annotations

import numpy as np

from mindvl.data_engine.dedup.signature_format import thumbnail

# A box edge is known to one scan pixel: at 128 a resized copy's box of a one-line equation
# could be 7% taller than the original's, and the two content thumbnails 0.64 apart (p99
# |z|, ``verify.VERIFY_MAX_CONTENT_P99_Z_DIFF`` is 0.55); at 192, 0.36. On the 20k benchmark
# corpus near recall went 0.962 (scan 128, bound 0.6) -> 0.971 (scan 192, the margin below,
# bound 0.55), both with antialiased thumbnails, with the same wrong drops. Cost: 0.36 ->
# 0.46 ms per picture for ``content_thumbnail`` (526 pictures of that corpus).
CONTENT_SCAN_SIDE = 192
CONTENT_MIN_CONTRAST = 12.0  # gray levels
CONTENT_REL_CONTRAST = 0.25
# Pictures whose content box covers this share of them or more have no content part (the
# whole-picture thumbnail already resolves them).
CONTENT_MAX_AREA = 0.3
# The box grows by this share of its side, plus CONTENT_MARGIN of the picture's longer side,
# per side. The margin was one scan pixel at 128 (1/128, plus up to one more where the scan
# rounded the edge outwards); with edges found at 192, 1/128 left some resized copies of
# small equations with a box under side x side pixels, so without a content thumbnail
# while their original had one (and a detail hash of the other kind), and 1.5/128 left one
# 10 detail-hash bits from its original (the bound is 8; tests/data_engine/
# test_dedup_crowded.py has both).
CONTENT_PAD = 0.05
CONTENT_MARGIN = 2 / 128


def content_thumbnail(gray, side: int) -> tuple[bytes, float] | None:
    """(side x side gray thumbnail of the content box, the box's share of the picture) of a
    Pillow "L" image, or None when it has no content, the box is not small, or it has
    fewer than side * side pixels (the thumbnail would be an upscale, blurred by how much
    the picture was downscaled, and a resized copy's would not match)."""
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

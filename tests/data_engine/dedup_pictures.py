"""Pictures for the dedup tests: drawn icons, flags and pads, their fingerprints, the
default rule's first rejecting check, and the row a build passes to dedup."""

from __future__ import annotations

import io

from dedup_helpers import RULE
from PIL import Image, ImageDraw

from mindvl.data_engine.dedup.compare import PairVerifier
from mindvl.data_engine.ops.image_decode import image_features


def encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def features(img: Image.Image, fmt: str = "PNG", **kw):
    return image_features(encoded(img, fmt, **kw), blur=False)


def check(a: Image.Image, b: Image.Image) -> str | None:
    """The first check of the default rule that rejects the pair (None: duplicates)."""
    sa, sb = (bytes.fromhex(features(x).signature) for x in (a, b))
    return PairVerifier(RULE).check(sa, sb)


def icon(glyph: str = "!", size: int = 48) -> Image.Image:
    """A transparent status icon: an orange disc with a white glyph, soft shadow."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((5, 6, size - 3, size - 2), fill=(0, 0, 0, 60))
    d.ellipse((3, 3, size - 5, size - 5), fill=(230, 120, 20, 255))
    if glyph == "!":
        d.rectangle((21, 11, 26, 28), fill=(255, 255, 255, 255))
        d.rectangle((21, 32, 26, 37), fill=(255, 255, 255, 255))
    else:  # "x"
        d.line((15, 15, 32, 32), fill=(255, 255, 255, 255), width=5)
        d.line((32, 15, 15, 32), fill=(255, 255, 255, 255), width=5)
    return img


def flag(colours, emblem: bool = False, size=(300, 200)) -> Image.Image:
    """A vertical tricolour (palette PNG), optionally with a small emblem in the middle."""
    img = Image.new("RGB", size)
    d = ImageDraw.Draw(img)
    w = size[0] // 3
    for i, c in enumerate(colours):
        d.rectangle((i * w, 0, (i + 1) * w, size[1]), fill=c)
    if emblem:
        cx, cy = size[0] // 2, size[1] // 2
        d.ellipse((cx - 12, cy - 12, cx + 12, cy + 12), fill=(200, 160, 0))
    return img.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)


def padded(img: Image.Image, margin: int) -> Image.Image:
    out = Image.new("RGBA", (img.width + 2 * margin, img.height + 2 * margin), (0, 0, 0, 0))
    out.paste(img, (margin, margin))
    return out


def row(key: str, f) -> dict:
    return {"key": key, "caption": "", "conversation": None, "pixel_hashes": [f.pixel_hash],
            "phashes": [f.phash], "signatures": [f.signature], "information": [f.information],
            "widths": [f.width], "heights": [f.height], "quality": None, "meta": "{}",
            "drop_reason": None}  # fmt: skip


def face(colour, size: int = 48) -> Image.Image:
    """A transparent smiley: a disc of ``colour`` with dark eyes and mouth."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((2, 2, size - 3, size - 3), fill=(*colour, 255))
    d.ellipse((14, 14, 20, 22), fill=(60, 30, 0, 255))
    d.ellipse((28, 14, 34, 22), fill=(60, 30, 0, 255))
    d.arc((12, 18, 36, 38), 20, 160, fill=(120, 40, 0, 255), width=3)
    return img


def on_white(img: Image.Image) -> Image.Image:
    """A transparent picture flattened on white (as a JPEG of it is)."""
    return Image.alpha_composite(Image.new("RGBA", img.size, (255,) * 4), img).convert("RGB")


def pixel_icon(size: int = 16) -> Image.Image:
    """A 16 px icon in the silk style: hard-edged shapes that fill the canvas."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 2, 12, 15), fill=(250, 250, 250, 255), outline=(120, 120, 120, 255))
    d.line((2, 5, 10, 5), fill=(60, 90, 200, 255))
    d.line((2, 8, 9, 8), fill=(60, 90, 200, 255))
    d.line((2, 11, 10, 11), fill=(60, 90, 200, 255))
    d.ellipse((8, 0, 15, 7), fill=(230, 60, 40, 255), outline=(140, 20, 10, 255))
    d.line((10, 3, 13, 3), fill=(255, 255, 255, 255))
    return img

"""How a decoded picture becomes the RGB every stage sees: one rule for the data engine's
features, its captioning and report thumbnails, and the trainer's model input.

A picture with transparency (RGBA, LA, PA, or P/L/RGB with a ``transparency`` entry) is
composited onto opaque white, as transformers' ``convert_to_rgb`` does for Qwen2-VL's image
processor (Pillow's plain ``convert("RGB")`` drops alpha and shows whatever colour lies
under it, often black). 16-bit and float greyscale are scaled to 8 bits, not clipped.
"""

from __future__ import annotations

WHITE = (255, 255, 255)


def has_alpha(img) -> bool:
    """Whether a decoded Pillow image carries transparency (a channel or a keyed colour)."""
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
    """RGB view of a decoded Pillow image; transparent pixels are composited onto white."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        return to_8bit(img).convert("RGB")  # (a 16-bit transparency key is ignored)
    if has_alpha(img):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")

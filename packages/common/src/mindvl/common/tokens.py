"""Token accounting shared by the data engine and the trainer.

Images follow the native-resolution rule of Qwen2-VL-style encoders: the image is resized,
keeping its aspect ratio, so both sides are multiples of 28 (14px patches, then a 2x2 merge)
and the pixel count lies within ``[min_pixels, max_pixels]``. Each 28x28 area becomes one LLM
token. Text tokens come from a Hugging Face tokenizer applied to the pieces of the chat
rendering in :mod:`mindvl.common.chat`. The trainer resizes with the same function, so the
counts in a manifest are exactly the lengths the trainer sees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import Field, model_validator

from mindvl.common.config import StrictModel

PATCH_SIZE = 14
MERGE_SIZE = 2
FACTOR = PATCH_SIZE * MERGE_SIZE  # 28: one LLM token per 28x28 area
MAX_ASPECT_RATIO = 200


class ImageTokenRule(StrictModel):
    """Pixel bounds of the native-resolution rule (recorded in recipes and manifests)."""

    min_pixels: int = Field(default=4 * FACTOR * FACTOR, gt=0)
    max_pixels: int = Field(default=256 * FACTOR * FACTOR, gt=0)

    @model_validator(mode="after")
    def _check(self) -> ImageTokenRule:
        if self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels must not exceed max_pixels")
        if self.max_pixels < FACTOR * FACTOR:
            raise ValueError(f"max_pixels must be at least {FACTOR * FACTOR}")
        return self

    def resized(self, width: int, height: int) -> tuple[int, int]:
        return smart_resize(width, height, self.min_pixels, self.max_pixels)

    def tokens(self, width: int, height: int) -> int:
        return image_tokens(width, height, self.min_pixels, self.max_pixels)


def smart_resize(width: int, height: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Target (width, height): multiples of 28, aspect ratio kept, pixels within bounds."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ValueError(f"aspect ratio of {width}x{height} exceeds {MAX_ASPECT_RATIO}")
    h = max(FACTOR, round(height / FACTOR) * FACTOR)
    w = max(FACTOR, round(width / FACTOR) * FACTOR)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(FACTOR, math.floor(height / beta / FACTOR) * FACTOR)
        w = max(FACTOR, math.floor(width / beta / FACTOR) * FACTOR)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / FACTOR) * FACTOR
        w = math.ceil(width * beta / FACTOR) * FACTOR
    return w, h


def image_tokens(width: int, height: int, min_pixels: int, max_pixels: int) -> int:
    """LLM tokens for one image: one per 28x28 area of the resized image."""
    w, h = smart_resize(width, height, min_pixels, max_pixels)
    return (w // FACTOR) * (h // FACTOR)


def patch_grid(width: int, height: int, min_pixels: int, max_pixels: int) -> tuple[int, int, int]:
    """(t, h, w) grid of 14px patches for one still image, as Qwen-VL encoders expect."""
    w, h = smart_resize(width, height, min_pixels, max_pixels)
    return 1, h // PATCH_SIZE, w // PATCH_SIZE


@dataclass(frozen=True)
class SampleTokens:
    image: int
    text: int

    @property
    def total(self) -> int:
        return self.image + self.text

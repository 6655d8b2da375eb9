"""Drop samples with an image too small (or too large) in side length or pixel count."""

from __future__ import annotations

from pydantic import Field

from mindvl.common.config import StrictModel
from mindvl.data_engine.ops.base import Operator
from mindvl.data_engine.ops.image_features import features
from mindvl.data_engine.record import Candidate


class ImageSizeParams(StrictModel):
    min_side: int = Field(default=32, ge=1, description="shorter side must be at least this")
    max_side: int | None = Field(default=None, ge=1, description="longer side at most this")
    min_pixels: int | None = Field(default=None, ge=1)
    max_pixels: int | None = Field(default=None, ge=1)


class ImageSize(Operator):
    """Every image must fit the bounds; reasons ``too_small`` / ``too_large``."""

    name = "image_size"
    Params = ImageSizeParams

    def __call__(self, candidate: Candidate) -> str | None:
        if (reason := features(candidate, self.context)) is not None:
            return reason
        p = self.params
        for im in candidate.images:
            w, h = im.width, im.height
            if min(w, h) < p.min_side or (p.min_pixels is not None and w * h < p.min_pixels):
                return "too_small"
            if (p.max_side is not None and max(w, h) > p.max_side) or (
                p.max_pixels is not None and w * h > p.max_pixels
            ):
                return "too_large"
        return None

"""Keep only images whose container format (from magic bytes, not file names) is allowed."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mindvl.common.config import StrictModel
from mindvl.data_engine.ops.base import Operator
from mindvl.data_engine.ops.image_features import features
from mindvl.data_engine.record import Candidate

ImageFormat = Literal["jpg", "png", "webp", "gif", "bmp", "tiff"]


class ImageFormatParams(StrictModel):
    allowed: list[ImageFormat] = Field(default_factory=lambda: ["jpg", "png", "webp"], min_length=1)


class ImageFormatFilter(Operator):
    """Reason ``format_not_allowed`` when any image's format is outside ``allowed``."""

    name = "image_format"
    Params = ImageFormatParams

    def __call__(self, candidate: Candidate) -> str | None:
        if (reason := features(candidate, self.context)) is not None:
            return reason
        if any(im.format not in self.params.allowed for im in candidate.images):
            return "format_not_allowed"
        return None

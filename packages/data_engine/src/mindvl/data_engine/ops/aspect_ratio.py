"""Drop samples with an extremely elongated image (banners, strips, slivers)."""

from __future__ import annotations

from pydantic import Field

from mindvl.common.config import StrictModel
from mindvl.data_engine.ops.base import Operator
from mindvl.data_engine.ops.image_features import features
from mindvl.data_engine.record import Candidate


class AspectRatioParams(StrictModel):
    max_ratio: float = Field(default=5.0, ge=1.0, description="longer side / shorter side")


class AspectRatio(Operator):
    """Reason ``aspect_ratio`` when any image's long/short side ratio exceeds ``max_ratio``."""

    name = "aspect_ratio"
    Params = AspectRatioParams

    def __call__(self, candidate: Candidate) -> str | None:
        if (reason := features(candidate, self.context)) is not None:
            return reason
        for im in candidate.images:
            if max(im.width, im.height) > self.params.max_ratio * min(im.width, im.height):
                return "aspect_ratio"
        return None

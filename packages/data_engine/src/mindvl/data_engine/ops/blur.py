"""Drop samples with a blurry image: low variance of the Laplacian.

The variance is measured by :mod:`.image_decode` on the grayscale image downscaled to a
longer side of 512, so one threshold works across resolutions. Flat synthetic images
(a blank canvas) also score near zero; ``low_information`` names that case more precisely,
so put it first in a recipe if the distinction matters in the funnel.
"""

from __future__ import annotations

from pydantic import Field

from mindvl.common.config import StrictModel
from mindvl.data_engine.ops.base import Operator
from mindvl.data_engine.ops.image_features import features
from mindvl.data_engine.record import Candidate


class BlurParams(StrictModel):
    min_variance: float = Field(default=10.0, ge=0.0, description="Laplacian variance floor")


class Blur(Operator):
    """Reason ``blurry`` when any image's Laplacian variance is below ``min_variance``."""

    name = "blur"
    Params = BlurParams

    def __call__(self, candidate: Candidate) -> str | None:
        if (reason := features(candidate, self.context, blur=True)) is not None:
            return reason
        if any(im.blur < self.params.min_variance for im in candidate.images):
            return "blurry"
        return None

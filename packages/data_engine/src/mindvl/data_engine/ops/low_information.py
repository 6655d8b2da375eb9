"""Drop near-blank images: blank canvases, flat fills, mostly-white scans.

The score (from :mod:`.image_decode`) is the standard deviation of a 64x64 grayscale
thumbnail divided by 255, in [0, 0.5]: 0 for a flat image, ~0.3 for a typical photo.
"""

from __future__ import annotations

from mindvl.common.config import StrictModel
from mindvl.data_engine.ops.base import Operator
from mindvl.data_engine.ops.image_features import NOT_DECODED, features_missing
from mindvl.data_engine.record import Candidate
from pydantic import Field


class LowInformationParams(StrictModel):
    min_information: float = Field(default=0.02, ge=0.0, le=0.5)


class LowInformation(Operator):
    """Reason ``low_information`` when any image scores below ``min_information``."""

    name = "low_information"
    Params = LowInformationParams

    def __call__(self, candidate: Candidate) -> str | None:
        if features_missing(candidate, "information"):
            return NOT_DECODED
        if any(v < self.params.min_information for v in candidate.information):
            return "low_information"
        return None

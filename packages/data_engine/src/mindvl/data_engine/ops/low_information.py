"""Drop near-blank images: blank canvases, flat fills, mostly-white scans.

The score (from :mod:`.image_decode`, taken by ``dedup.fingerprint``) is the standard
deviation of a 64x64 grayscale thumbnail divided by 255, in [0, 0.5]: 0 for a flat image,
~0.3 for a typical photo. The thumbnail is of the picture flattened on white, or on black
for a white drawing on a transparent canvas, which is blank on white but not a blank image.
The default floor (0.01: every thumbnail pixel within ~2.5 grey levels of the mean) is
deliberately low: on the corpus kit, valid sparse images (three words of text on a light
page, thin line art on white) score 0.014-0.03 and must survive.
"""

from __future__ import annotations

from pydantic import Field

from mindvl.common.config import StrictModel
from mindvl.data_engine.ops.base import Operator
from mindvl.data_engine.ops.image_features import features
from mindvl.data_engine.record import Candidate


class LowInformationParams(StrictModel):
    min_information: float = Field(default=0.01, ge=0.0, le=0.5)


class LowInformation(Operator):
    """Reason ``low_information`` when any image scores below ``min_information``."""

    name = "low_information"
    Params = LowInformationParams

    def __call__(self, candidate: Candidate) -> str | None:
        if (reason := features(candidate, self.context)) is not None:
            return reason
        if any(im.information < self.params.min_information for im in candidate.images):
            return "low_information"
        return None

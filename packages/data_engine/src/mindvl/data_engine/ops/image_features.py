"""What the image filters share: the per-image features, computed where they are needed.

``image_decode`` stores them on every :class:`ImageRecord`; a filter that reads them calls
:func:`features` first, which decodes the images that lack them with the recipe's decode
settings (``OpContext.decode``), so a filter listed before ``image_decode`` (or in a recipe
without it) judges the same features instead of dropping the sample. A picture that cannot
be decoded is then dropped by that filter with the decode's reason.
"""

from __future__ import annotations

from mindvl.data_engine.ops.base import OpContext
from mindvl.data_engine.ops.image_decode import ImageDecodeParams, annotate
from mindvl.data_engine.record import Candidate


def features(candidate: Candidate, context: OpContext, blur: bool = False) -> str | None:
    """None once every image has its features (and its blur score if ``blur``), else the
    drop reason of the decode."""
    if all(im.decoded and (im.blur is not None or not blur) for im in candidate.images):
        return None
    params = context.decode if context.decode is not None else ImageDecodeParams()
    return annotate(candidate, params, blur or context.blur_score)

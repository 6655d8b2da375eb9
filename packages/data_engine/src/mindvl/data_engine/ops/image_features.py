"""What the image filters share: reading the features :mod:`.image_decode` stored."""

from __future__ import annotations

from mindvl.data_engine.record import Candidate

NOT_DECODED = "not_decoded"


def features_missing(candidate: Candidate, *fields: str) -> bool:
    """True unless every named per-image list is aligned with ``candidate.images``.

    A filter placed before ``image_decode`` (or fed rows that lost their features) drops
    with ``not_decoded`` instead of silently passing unchecked images.
    """
    n = len(candidate.images)
    return any(len(getattr(candidate, f) or []) != n for f in fields)

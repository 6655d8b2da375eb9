"""Shared helpers of the dedup tests: the default rule's decision on signature bytes, and
signatures packed from bare gray thumbnails."""

from __future__ import annotations

import numpy as np

from mindvl.data_engine.dedup.compare import PairVerifier
from mindvl.data_engine.dedup.fingerprint import pack_signature
from mindvl.data_engine.dedup.rule import NearRule

RULE = NearRule()
GREY_CHROMA = bytes([128]) * 128  # colourless: the colour check never decides


def agree(a: bytes, b: bytes, distance: int | None = None, rule: NearRule = RULE) -> bool:
    return PairVerifier(rule).agree(a, b, distance)


def packed(gray, size: tuple[int, int] = (48, 48)) -> bytes:
    """A signature of a bare gray thumbnail (array or bytes) of an image of ``size``."""
    data = gray.tobytes() if isinstance(gray, np.ndarray) else bytes(gray)
    return pack_signature(data, size[0], size[1], GREY_CHROMA)

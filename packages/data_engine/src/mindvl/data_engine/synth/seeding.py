"""Per-sample random streams: a sample's content depends only on (seed, split, category,
index, purpose), never on generation order or on how many other samples exist."""

from __future__ import annotations

import zlib

import numpy as np

# Separate purposes so e.g. raising the fault rate never changes a clean image.
RENDER, FAULT, DUPLICATE, SHUFFLE, LOW_INFO, DUP_PICK, LOW_INFO_DUP = 0, 1, 2, 3, 4, 5, 6


def stream_rng(
    seed: int, heldout: bool, category: str, index: int, purpose: int, attempt: int = 0
) -> np.random.Generator:
    """A generator keyed by the sample's identity; heldout sets use a disjoint stream.
    ``attempt`` > 0 gives a fresh stream for a sample drawn again (attempt 0 is the stream
    every sample had before retries existed)."""
    key = [seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, 1 if heldout else 0]
    key += [zlib.crc32(category.encode()), index, purpose]
    if attempt:
        key.append(attempt)
    return np.random.default_rng(np.random.SeedSequence(key))

"""Shared helpers of the dedup tests: the default rule's decision on signature bytes,
signatures packed from bare gray thumbnails, and candidate pairs of bare 64-bit hashes
through the local runner's buckets."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mindvl.data_engine.dedup import local
from mindvl.data_engine.dedup.candidates import KEY_OWN, BandScheme
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


def hash_pairs(
    h: np.ndarray, scheme: BandScheme, rule: NearRule, details=None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(left, right, distance, crowded buckets) of n images whose only key is their pHash
    ``h``, as ``local.buckets_of`` pairs them; ``details``: their (detail hashes, detail
    kinds, size keys), all zero without."""
    n, nb = h.size, scheme.n_bands
    detail, kinds, sizes = details or (np.zeros(n, np.uint64), np.zeros(n, np.int8), np.zeros(n))
    at = np.repeat(np.arange(n), nb)
    bands = pa.table(
        {"bkey": scheme.keys(h).reshape(-1), "label": [f"{i:07d}" for i in at.tolist()],
         "phash": h[at], "own": h[at], "detail": np.asarray(detail, np.uint64)[at],
         "detail_kind": np.asarray(kinds, np.int8)[at], "size": np.asarray(sizes, np.int64)[at],
         "kind": np.full(at.size, KEY_OWN, np.int8)},
        schema=local.BANDS,
    )  # fmt: skip
    buckets = local.buckets_of(bands, scheme, rule)
    left, right = (np.array(pc.list_flatten(buckets[c]).to_pylist(), np.int64) for c in "ab")
    distance = pc.list_flatten(buckets["distance"]).to_numpy()
    return left, right, distance, local.bucket_counts(buckets)["crowded"]

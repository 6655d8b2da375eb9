"""Keeping evaluation images out of training data.

The engine reads each eval corpus named in ``DedupSpec.decontaminate`` with its readers and
passes every eval image's fingerprint (``ops.image_decode.eval_hashes_from_images``: the
build's own features) as ``EvalImage`` or a plain ``(phash, signature, pixel_hash[,
information])`` tuple to dedup. A training image matches an eval image when its pixel hash
is equal, or, when both carry enough information (``min_information``; an eval image
without a score is taken to have enough), one of its candidate keys (pHash, trimmed pHash, crop
pHashes: ``candidates.candidate_keys``) is within the rule's pair radius of one of the eval image's
and the rule accepts the pair (``compare.PairVerifier``, with the pictures' own pHash
distance, as in dedup). The index is small (eval sets are) and is shipped to every worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mindvl.data_engine.dedup.candidates import (
    KEY_CROP,
    KEY_OWN,
    BandScheme,
    candidate_keys,
    hamming,
)
from mindvl.data_engine.dedup.compare import PairVerifier
from mindvl.data_engine.dedup.fingerprint import EvalImage
from mindvl.data_engine.dedup.rule import NearRule


class EvalIndex:
    """Lookup of training images against eval images (exact pixels, or verified pHash)."""

    def __init__(self, images: Sequence[Sequence], rule: NearRule) -> None:
        self.near = near = rule
        self.verifier = PairVerifier(rule)
        self.images = [EvalImage(*img) for img in images]
        self.pixels = {img.pixel_hash: i for i, img in enumerate(self.images)}
        self.radius = rule.pair_radius
        self.scheme = BandScheme.exact(self.radius)
        self.n_bands = self.scheme.n_bands
        usable = [
            i
            for i, img in enumerate(self.images)
            if img.phash and (img.information is None or img.information >= near.min_information)
        ]
        phashes = [int(self.images[i].phash, 16) for i in usable]
        sigs = [bytes.fromhex(self.images[i].signature) for i in usable]
        self.hashes, owner, self.kind = candidate_keys(phashes, sigs)
        self.near_ids = np.array(usable, dtype=np.int64)[owner]
        self.buckets: list[dict[int, list[int]]] = [{} for _ in range(self.n_bands)]
        for pos, row in enumerate(self.scheme.values(self.hashes).tolist()):
            for b, v in enumerate(row):
                self.buckets[b].setdefault(v, []).append(pos)

    def __len__(self) -> int:
        return len(self.images)

    def match_row(self, row: dict) -> int | None:
        """Index of the eval image any image of a ``Candidate.to_row()`` dict matches."""
        info = list(row.get("information") or [])
        ph, sig = list(row.get("phashes") or []), list(row.get("signatures") or [])
        for i, p in enumerate(row.get("pixel_hashes") or []):
            hit = self.match(
                p,
                ph[i] if i < len(ph) else None,
                sig[i] if i < len(sig) else None,
                float(info[i]) if i < len(info) and info[i] is not None else None,
            )
            if hit is not None:
                return hit
        return None

    def match(
        self, pixel_hash: str, phash: str | None, signature: str | None, information: float | None
    ) -> int | None:
        """Index of a matching eval image, or None."""
        hit = self.pixels.get(pixel_hash)
        if hit is not None:
            return hit
        near = self.near
        if not near.enabled or not phash or information is None:
            return None
        if information < near.min_information or self.hashes.size == 0:
            return None
        own = int(phash, 16)
        keys, _, kind = candidate_keys([own], [bytes.fromhex(signature or "")])
        found: set[int] = set()
        for key, k, values in zip(keys.tolist(), kind, self.scheme.values(keys), strict=True):
            for b, v in enumerate(values.tolist()):
                found.update(p for p in self.buckets[b].get(v, ()) if self._close(p, key, k))
        for i in sorted({int(self.near_ids[p]) for p in found}):
            distance = int(hamming(np.uint64(int(self.images[i].phash, 16)), np.uint64(own)))
            theirs = bytes.fromhex(self.images[i].signature)
            if not near.verify or (signature and self.verifier.agree(
                bytes.fromhex(signature), theirs, distance)):  # fmt: skip
                return i
        return None

    def _close(self, pos: int, key: int, kind: int) -> bool:
        """Key ``pos`` is within the radius of a query key of ``kind`` (a crop key pairs
        with the other image's own pHash only, within ``crop_radius``: as in
        ``candidates.image_pairs``)."""
        crop = KEY_CROP in (kind, self.kind[pos])
        if crop and KEY_OWN not in (kind, self.kind[pos]):
            return False
        radius = min(self.radius, self.near.crop_radius) if crop else self.radius
        return int(hamming(self.hashes[pos], np.uint64(key))) <= radius

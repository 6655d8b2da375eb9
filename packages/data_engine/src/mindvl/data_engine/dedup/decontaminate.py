"""Keeping evaluation images out of training data.

The engine reads each eval corpus named in ``DedupSpec.decontaminate`` with its readers and
passes every eval image's fingerprint (``ops.image_decode.eval_hashes_from_images``: the
build's own features) as ``EvalImage`` or a plain ``(phash, signature, pixel_hash[,
information])`` tuple to dedup. A training image matches an eval image when its pixel hash
is equal, or, when both carry enough information (``min_information``; an eval image
without a score is taken to have enough), one of its candidate keys (pHash, trimmed pHash,
crop pHashes, icon content and canvas keys: ``candidates.candidate_keys``) pairs with one
of the eval image's (``candidates.keys_pair``) and the rule accepts the pair
(``compare.PairVerifier``, at the distance dedup judges it at:
``candidates.judged_distance``). The index is small (eval sets are) and is shipped to
every worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mindvl.data_engine.dedup.candidates import (
    BandScheme,
    candidate_keys,
    hamming,
    judged_distance,
    keys_pair,
)
from mindvl.data_engine.dedup.compare import PairVerifier
from mindvl.data_engine.dedup.fingerprint import EvalImage
from mindvl.data_engine.dedup.rule import NearRule


class EvalIndex:
    """Lookup of training images against eval images (exact pixels, or verified pHash)."""

    def __init__(self, images: Sequence[Sequence], rule: NearRule) -> None:
        self.rule = rule
        self.verifier = PairVerifier(rule)
        self.images = [EvalImage(*img) for img in images]
        self.pixels = {img.pixel_hash: i for i, img in enumerate(self.images)}
        self.scheme = BandScheme.exact(rule.pair_radius)
        usable = [
            i
            for i, img in enumerate(self.images)
            if img.phash and (img.information is None or img.information >= rule.min_information)
        ]
        phashes = [int(self.images[i].phash, 16) for i in usable]
        sigs = [bytes.fromhex(self.images[i].signature) for i in usable]
        self.keys, owner, self.kind = candidate_keys(phashes, sigs)
        self.owner = np.array(usable, dtype=np.int64)[owner]  # the eval image of each key
        self.buckets: dict[int, list[int]] = {}  # band key -> positions in ``keys``
        for pos, row in enumerate(self.scheme.keys(self.keys).tolist()):
            for bkey in row:
                self.buckets.setdefault(bkey, []).append(pos)

    def match_row(self, row: dict) -> int | None:
        """Index of the eval image any image of a ``Candidate.to_row()`` dict matches."""
        info = list(row.get("information") or [])
        phashes, sigs = list(row.get("phashes") or []), list(row.get("signatures") or [])
        for i, pixel_hash in enumerate(row.get("pixel_hashes") or []):
            hit = self.pixels.get(pixel_hash)
            if hit is None and i < len(phashes) and i < len(info) and info[i] is not None:
                sig = sigs[i] if i < len(sigs) else None
                hit = self._near_match(phashes[i], sig, float(info[i]))
            if hit is not None:
                return hit
        return None

    def _near_match(
        self, phash: str | None, signature: str | None, information: float
    ) -> int | None:
        """Index of the first eval image one of whose keys is close to one of this image's
        and that the rule accepts against it, or None."""
        rule = self.rule
        if not rule.enabled or not phash or information < rule.min_information or not self.buckets:
            return None
        own = int(phash, 16)
        keys, _, kind = candidate_keys([own], [bytes.fromhex(signature or "")])
        found: dict[int, int] = {}  # eval image -> the least distance the rule judges it at
        for key, k, bkeys in zip(keys.tolist(), kind, self.scheme.keys(keys), strict=True):
            for p in {p for bkey in bkeys.tolist() for p in self.buckets.get(bkey, ())}:
                if self._close(p, key, k):
                    i = int(self.owner[p])
                    d = int(hamming(int(self.images[i].phash, 16), own))
                    d = int(judged_distance(k, self.kind[p], d, rule))
                    found[i] = min(found.get(i, d), d)
        for i, distance in sorted(found.items()):
            theirs = bytes.fromhex(self.images[i].signature)
            if not rule.verify or (signature and self.verifier.agree(
                bytes.fromhex(signature), theirs, distance)):  # fmt: skip
                return i
        return None

    def _close(self, pos: int, key: int, kind: int) -> bool:
        """Eval key ``pos`` and a query key of ``kind`` make a candidate pair (as in dedup)."""
        d = int(hamming(self.keys[pos], key))
        rule = self.rule
        return d <= rule.pair_radius and bool(keys_pair(kind, self.kind[pos], d, rule))

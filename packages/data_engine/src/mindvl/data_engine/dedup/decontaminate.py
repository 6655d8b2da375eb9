"""Keeping evaluation images out of training data.

The engine reads each eval corpus named in ``DedupSpec.decontaminate`` with its readers and
passes every eval image's fingerprint (``ops.image_decode.eval_hashes_from_images``: the
build's own features) as ``EvalImage`` or a plain ``(phash, signature, pixel_hash[,
information])`` tuple to dedup. A training image matches an eval image when its pixel hash
is equal, or, when both carry enough information (``min_information``; an eval image
without a score is taken to have enough), one of its candidate keys (pHash, trimmed pHash,
crop pHashes, icon keys: ``candidates.candidate_keys``) pairs with one of the eval
image's and the rule accepts the pair (``compare.PairVerifier``) at the distance dedup
judges it at (``candidates.pair_distance``). The index is small (eval sets are) and is
shipped to every worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mindvl.data_engine.dedup.candidates import BandScheme, candidate_keys, pair_distance
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
        keys, owner, kind = candidate_keys(phashes, sigs)
        order = np.argsort(owner, kind="stable")
        at = np.split(order, np.searchsorted(owner[order], np.arange(1, len(usable))))
        # eval image -> (its pHash, its keys, their kinds)
        self.keys = {i: (phashes[n], keys[at[n]], kind[at[n]]) for n, i in enumerate(usable)}
        self.buckets: dict[int, set[int]] = {}  # band key -> the eval images with a key there
        for n, row in zip(owner.tolist(), self.scheme.keys(keys).tolist(), strict=True):
            for bkey in row:
                self.buckets.setdefault(bkey, set()).add(usable[n])

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
        near = {i for bkey in self.scheme.keys(keys).reshape(-1).tolist()
                for i in self.buckets.get(bkey, ())}  # fmt: skip
        for i in sorted(near):
            distance = pair_distance((own, keys, kind), self.keys[i], rule)
            if distance is None:
                continue
            theirs = bytes.fromhex(self.images[i].signature)
            if not rule.verify or (signature and self.verifier.agree(
                bytes.fromhex(signature), theirs, distance)):  # fmt: skip
                return i
        return None

"""Global dedup without Ray: the reference semantics, used by units and small builds.

Order of work (the Ray path in ``ray_dedup.py`` does the same steps distributed):

1. decontaminate: rows with an image matching an eval image are dropped first, so they
   never become survivors;
2. exact: rows are grouped by pixel hash of their images (``spec.exact``: one sample per
   distinct picture, whatever its text) or, with ``exact: false``, by pixels + text (only
   identical image-text pairs go);
3. near: the exact survivors with one image, enough ``information`` and a signature are
   paired by pHash banding (Hamming <= ``max_hamming``; ``bands.py``: exact pigeonhole
   bands, or sampled LSH tables for very large builds; a bucket crowded with look-alikes,
   more than m(m-1)/2 pairs within the bound for m = ``near.crowded_bucket``, pairs only
   images also close in the detail hash or of one size, ``lsh.Crowding``; pairs further
   than ``near.crop_only_beyond`` only when their sizes are a crop's), each pair verified
   by thumbnail distance, and joined into connected components. Near dedup is
   image-level: a near copy
   (or the same picture) with a different text is dropped too. Images below
   ``near.min_information`` (flat, mostly white, line art) get exact dedup only;
4. every component is split into stars (``verify.star_members``): a survivor
   (``survivor.py``) and the members that verify against it themselves, the rest split the
   same way (verified pairs A~B, B~C do not drop C for A when A and C differ); exact-stage
   members follow the survivor of their exact group's representative, so ``dup_survivor``
   is a kept row.

Samples with several images are exact duplicates only when all their images match, in
order, and take no part in near dedup. Rows without pixel hashes (text-only, or not
decoded) are left alone. Verification is what keeps look-alike images apart once pHash has
matched: colour, sizes, 48x48 grayscale thumbnails compared after a small crop search and,
for mostly-background pictures, their content boxes (``verify.thumbnails_agree``), after a
vectorised screen of all candidate pairs (chroma, then 16x16 thumbnails:
``screen.screen_pairs``) and with per-image search terms cached
(``verify.PairVerifier``); see ``tests/data_engine/test_dedup_corpus.py`` for the
measured precision/recall.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mindvl.common.manifest import DedupStats
from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup.bands import scheme_for
from mindvl.data_engine.dedup.compare import PairVerifier, star_members, verify_pairs
from mindvl.data_engine.dedup.components import UnionFind
from mindvl.data_engine.dedup.decisions import (
    OP_EXACT,
    OP_NEAR,
    REASON_NEAR,
    REASON_SAME_PAIR,
    REASON_SAME_PIXELS,
    Decision,
    apply_decision,
    eval_decision,
    eval_match,
)
from mindvl.data_engine.dedup.decontaminate import EvalIndex
from mindvl.data_engine.dedup.lsh import candidate_pairs, crowding_for
from mindvl.data_engine.dedup.rule import NearRule
from mindvl.data_engine.dedup.survivor import group_id, label_key
from mindvl.data_engine.dedup.view import DedupItem, dedup_item
from mindvl.data_engine.record import Candidate


def plan_dedup(
    rows: Sequence[dict[str, Any]], spec: DedupSpec, eval_sets: Sequence | None = None
) -> tuple[dict[str, Decision], DedupStats]:
    """Decisions by key for every row dedup touches; rows it does not touch are absent."""
    stats = DedupStats()
    decisions: dict[str, Decision] = {}
    rule = NearRule.from_spec(spec.near)
    index = EvalIndex(eval_sets, rule) if eval_sets else None
    items: list[DedupItem] = []
    for row in rows:
        hit = eval_match(row, index)
        if hit is not None:
            decisions[row["key"]] = eval_decision(row["key"], hit)
            stats.decontaminated += 1
            continue
        item = dedup_item(row, spec)
        if item is not None:
            items.append(item)

    # exact: label-min of each group survives
    exact_groups: dict[str, list[DedupItem]] = {}
    for it in items:
        exact_groups.setdefault(it.exact_key, []).append(it)
    reps: list[DedupItem] = []
    members_of: dict[str, list[DedupItem]] = {}
    for group in exact_groups.values():
        group.sort(key=lambda it: it.label)
        reps.append(group[0])
        if len(group) > 1:
            members_of[group[0].key] = group[1:]
            stats.exact_groups += 1
            stats.exact_dropped += len(group) - 1
    stats.low_information_exact_only = sum(it.low_information for it in reps)

    # near: banding -> distance -> verification -> components
    nodes = sorted((it for it in reps if it.near_ok), key=lambda it: it.label)
    uf = UnionFind()
    if len(nodes) > 1:
        hashes = np.array([it.phash for it in nodes], dtype=np.uint64)
        scheme = scheme_for(rule, len(nodes))
        stats.near_index = scheme.describe()
        sigs = [it.signature for it in nodes]
        pairs = candidate_pairs(hashes, scheme.max_hamming, scheme, crowding_for(rule, sigs))
        stats.near_candidate_pairs = int(pairs.left.size)
        stats.near_crowded_buckets = pairs.crowded_buckets
        ok = verify_pairs(sigs, pairs.left, pairs.right, pairs.distance, rule)
        stats.near_rejected_by_verify = int((~ok).sum())
        for a, b in zip(pairs.left[ok].tolist(), pairs.right[ok].tolist(), strict=True):
            uf.union(a, b)
    final: dict[str, str] = {it.key: it.label for it in reps}  # rep key -> survivor label
    near_survivors: set[str] = set()
    sig_of = {it.label: it.signature for it in nodes}
    comps = [sorted(nodes[i].label for i in comp) for comp in uf.groups()]
    if rule.verify:
        verifier = PairVerifier(rule)
        comps = [star for c in comps for star in star_members(c, sig_of, verifier)]
    for labels in comps:
        stats.near_groups += 1
        stats.near_dropped += len(labels) - 1
        near_survivors.add(label_key(labels[0]))
        for lab in labels:
            final[label_key(lab)] = labels[0]

    # decisions: survivors get their group id, members their survivor
    for rep in reps:
        top = final[rep.key]
        top_key = label_key(top)
        gid = group_id(top_key)
        if top != rep.label:
            decisions[rep.key] = Decision(rep.key, gid, top_key, OP_NEAR, REASON_NEAR)
        elif rep.key in members_of or rep.key in near_survivors:
            decisions[rep.key] = Decision(rep.key, gid)
        for m in members_of.get(rep.key, ()):
            reason = REASON_SAME_PAIR if m.pair_key == rep.pair_key else REASON_SAME_PIXELS
            decisions[m.key] = Decision(m.key, gid, top_key, OP_EXACT, reason)
    return decisions, stats


def dedup_rows(
    rows: Sequence[dict[str, Any]], spec: DedupSpec, eval_sets: Sequence | None = None
) -> tuple[list[dict[str, Any]], DedupStats]:
    """Dedup ``Candidate.to_row()`` dicts (plus a ``signatures`` column); same order out."""
    decisions, stats = plan_dedup(rows, spec, eval_sets)
    return [apply_decision(dict(r), decisions.get(r["key"])) for r in rows], stats


def dedup_candidates(
    candidates: Sequence[Candidate], spec: DedupSpec, eval_sets: Sequence | None = None
) -> DedupStats:
    """Dedup Candidates in place (drops + ``meta`` dup fields); returns the stats."""
    rows = [{**c.to_row(), "signatures": list(c.signatures)} for c in candidates]
    decisions, stats = plan_dedup(rows, spec, eval_sets)
    for c in candidates:
        d = decisions.get(c.key)
        if d is None:
            continue
        c.meta["dup_group"] = d.group
        if d.op is not None:
            if d.survivor is not None:
                c.meta["dup_survivor"] = d.survivor
            c.drop("dedup", d.op, d.reason or "")
    return stats

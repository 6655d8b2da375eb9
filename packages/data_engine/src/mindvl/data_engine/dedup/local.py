"""Dedup in one process: the steps of ``groups.py``, ``candidates.py`` and ``compare.py``
called on lists (units, benchmarks, the reference the Ray runner is tested against)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mindvl.common.manifest import DedupStats
from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup.candidates import (
    candidate_keys,
    candidate_pairs,
    crowding_for,
    image_pairs,
    scheme_for,
)
from mindvl.data_engine.dedup.compare import verify_pairs
from mindvl.data_engine.dedup.decontaminate import EvalIndex
from mindvl.data_engine.dedup.groups import (
    Decision,
    Item,
    apply_decision,
    decide,
    exact_counts,
    exact_group,
    near_groups,
    view,
)
from mindvl.data_engine.dedup.rule import NearRule


def near_candidates(items: Sequence[Item], rule: NearRule, stats: DedupStats | None = None):
    """(the exact representatives that take part in near dedup, sorted by label; their
    candidate pairs as ``candidates.PairResult``), or (nodes, None) with fewer than two."""
    nodes = sorted((it for it in items if it.is_rep and it.near_ok), key=lambda it: it.label)
    if len(nodes) < 2:
        return nodes, None
    scheme = scheme_for(rule, len(nodes))
    phashes = [it.phash for it in nodes]
    keys, owner, kind = candidate_keys(phashes, [it.sig for it in nodes])
    sigs = [nodes[i].sig for i in owner.tolist()]
    pairs = candidate_pairs(keys, scheme.max_hamming, scheme, crowding_for(rule, sigs))
    found = image_pairs(
        pairs.left, pairs.right, owner, phashes, kind, keys, rule.crop_radius, scheme.max_hamming
    )
    pairs.left, pairs.right, pairs.distance = found
    if stats is not None:
        stats.near_index = scheme.describe()
        stats.near_candidate_pairs = int(pairs.left.size)
        stats.near_crowded_buckets = pairs.crowded_buckets
    return nodes, pairs


def exact_items(
    rows: Sequence[dict[str, Any]], spec: DedupSpec, eval_sets=None, rule: NearRule | None = None
) -> list[Item]:
    """Every row dedup takes part in, after the exact step."""
    rule = rule or NearRule.from_spec(spec.near)
    index = EvalIndex(eval_sets, rule) if eval_sets else None
    groups: dict[str, list[Item]] = {}
    for row in rows:
        item = view(row, spec.exact, rule, index.match_row if index else None)
        if item is not None:
            groups.setdefault(item.exact_key, []).append(item)
    return [it for group in groups.values() for it in exact_group(group)]


def plan_dedup(
    rows: Sequence[dict[str, Any]],
    spec: DedupSpec,
    eval_sets: Sequence | None = None,
    rule: NearRule | None = None,
) -> tuple[dict[str, Decision], DedupStats]:
    """Decisions by key for every row dedup touches; rows it does not touch are absent.
    ``rule``: instead of ``spec.near``'s (e.g. ``unscreened()``, to check the screens)."""
    rule = rule or NearRule.from_spec(spec.near)
    items = exact_items(rows, spec, eval_sets, rule)
    counts = exact_counts(items)
    stats = DedupStats(**{k: v for k, v in counts.items() if k in DedupStats.model_fields})
    nodes, pairs = near_candidates(items, rule, stats)
    survivor_of: dict[str, str] = {}
    if pairs is not None:
        sigs = [it.sig for it in nodes]
        ok = verify_pairs(sigs, pairs.left, pairs.right, pairs.distance, rule)
        stats.near_rejected_by_verify = int((~ok).sum())
        edges = [
            (nodes[a].label, nodes[b].label)
            for a, b in zip(pairs.left[ok].tolist(), pairs.right[ok].tolist(), strict=True)
        ]
        survivor_of = near_groups(edges, {it.label: it.sig for it in nodes}, rule)
    stats.near_groups = len(set(survivor_of.values()))
    stats.near_dropped = len(survivor_of) - stats.near_groups
    decisions = (decide(it, survivor_of) for it in items)
    return {d.key: d for d in decisions if d is not None}, stats


def dedup_rows(
    rows: Sequence[dict[str, Any]], spec: DedupSpec, eval_sets: Sequence | None = None
) -> tuple[list[dict[str, Any]], DedupStats]:
    """Dedup ``Candidate.to_row()`` dicts; the same rows in the same order out."""
    decisions, stats = plan_dedup(rows, spec, eval_sets)
    return [apply_decision(dict(r), decisions.get(r["key"])) for r in rows], stats

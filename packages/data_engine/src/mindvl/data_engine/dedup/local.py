"""Dedup's steps as functions over Arrow tables, and ``plan_dedup``, which runs them in one
process. Each step takes what a Ray Data task gets (a block, or one group of a group-by);
``ray_runner.py`` wires the same functions with Ray Data, so the two runners agree by
construction. Tables: ``ITEMS`` (``groups.Item``, each row's view after the exact step),
``BANDS`` (one slim row per near-eligible representative, band and candidate key: no
signature), ``BUCKETS`` (one band bucket's candidate pairs), ``PAIRS`` (accepted pairs with
both signatures) and ``SURVIVORS`` (each near group member's survivor label)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mindvl.common.manifest import DedupStats
from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup import candidates, groups
from mindvl.data_engine.dedup.batch import verify_pairs
from mindvl.data_engine.dedup.decontaminate import EvalIndex
from mindvl.data_engine.dedup.rule import NearRule

ITEMS = pa.schema(
    [("key", pa.string()), ("label", pa.string()), ("exact_key", pa.string()),
     ("pair_key", pa.string()), ("near_ok", pa.bool_()), ("low", pa.bool_()),
     ("phash", pa.uint64()), ("sig", pa.binary()), ("eval_hit", pa.int64()),
     ("rep_label", pa.string()), ("same_pair", pa.bool_()), ("in_group", pa.bool_())]
)  # fmt: skip
BANDS = pa.schema(
    [("bkey", pa.int64()), ("label", pa.string()), ("phash", pa.uint64()), ("own", pa.uint64()),
     ("detail", pa.uint64()), ("detail_kind", pa.int8()), ("size", pa.int64()),
     ("kind", pa.int8())]
)  # fmt: skip
BUCKETS = pa.schema(
    [("a", pa.list_(pa.string())), ("b", pa.list_(pa.string())),
     ("distance", pa.list_(pa.int16())), ("crowded", pa.bool_())]
)  # fmt: skip
PAIRS = pa.schema(
    [("a", pa.string()), ("b", pa.string()), ("sig_a", pa.binary()), ("sig_b", pa.binary())]
)
SURVIVORS = pa.schema([("label", pa.string()), ("survivor", pa.string())])


def items_of(table: pa.Table) -> list[groups.Item]:
    return [groups.Item(**row) for row in table.to_pylist()]


def table_of(items: list[groups.Item]) -> pa.Table:
    return pa.Table.from_pylist([it.__dict__ for it in items], schema=ITEMS)


def near_reps(table: pa.Table) -> pa.Table:
    """The exact representatives that take part in near dedup."""
    return table.filter(pc.and_(pc.equal(table["label"], table["rep_label"]), table["near_ok"]))


def band_rows(table: pa.Table, scheme: candidates.BandScheme) -> pa.Table:
    """Each near-eligible representative once per band and candidate key
    (``candidates.candidate_keys``), keyed by (band, value), with its detail hash."""
    table = near_reps(table)
    sigs = table.column("sig").to_pylist()
    details = [candidates.detail_hash(sig) for sig in sigs]
    keys, owner, kind = candidates.candidate_keys(table["phash"].to_numpy(), sigs)
    idx = np.repeat(owner, scheme.n_bands)
    return pa.table(
        {"bkey": candidates.band_keys(scheme, keys, kind).reshape(-1),
         "label": table.column("label").take(idx), "phash": np.repeat(keys, scheme.n_bands),
         "own": table.column("phash").take(idx),
         "detail": np.array([d[0] for d in details], dtype=np.uint64)[idx],
         "detail_kind": np.array([d[1] for d in details], dtype=np.int8)[idx],
         "size": np.array([d[2] for d in details], dtype=np.int64)[idx],
         "kind": np.repeat(kind, scheme.n_bands)},
        schema=BANDS,
    )  # fmt: skip


def bucket(table: pa.Table, scheme: candidates.BandScheme, rule: NearRule) -> pa.Table:
    """One band bucket's candidate pairs (labels, smaller first; ``candidates.bucket_pairs``)
    as one row."""
    if table.num_rows < 2:
        return BUCKETS.empty_table()
    names, (h, owner, own, kind) = _images(table)
    band = int(scheme.bands_of_keys(table["bkey"].to_numpy()[:1])[0])
    details = [table.column(c).to_numpy() for c in ("detail", "detail_kind", "size")]
    i, j, d, crowded = candidates.bucket_pairs(h, owner, own, kind, band, scheme, rule, details)
    return _bucket_row(names, i, j, d, crowded)


def _images(table: pa.Table) -> tuple[np.ndarray, tuple]:
    """``BANDS`` rows' images, sorted labels, and per row (pHash key, image, image's own
    pHash by image, key kind)."""
    labels = pc.dictionary_encode(table["label"].combine_chunks())
    order = pc.array_sort_indices(labels.dictionary).to_numpy()  # by code point, as Python
    names = np.array(labels.dictionary.take(order).to_pylist(), dtype=object)
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    owner = rank[labels.indices.to_numpy()]
    own = np.zeros(names.size, dtype=np.uint64)
    own[owner] = table.column("own").to_numpy()
    return names, (table["phash"].to_numpy(), owner, own, table["kind"].to_numpy())


def _bucket_row(names, i, j, d, crowded: bool = False) -> pa.Table:
    # the smaller image index first, and names are sorted: a < b
    return pa.table({"a": [names[i].tolist()], "b": [names[j].tolist()],
                     "distance": [d.tolist()], "crowded": [crowded]}, schema=BUCKETS)  # fmt: skip


def bucket_counts(table: pa.Table) -> dict[str, int]:
    pairs = int(pc.sum(pc.list_value_length(table["a"])).as_py() or 0)
    return {"pairs": pairs, "crowded": int(pc.sum(table["crowded"]).as_py() or 0)}


def signature_index(table: pa.Table) -> dict[str, bytes]:
    """Signature by label of the near-eligible representatives among ``ITEMS`` rows."""
    reps = near_reps(table)
    return dict(zip(reps["label"].to_pylist(), reps["sig"].to_pylist(), strict=True))


def verified(a: list[str], b: list[str], distance, sig_of: dict[str, bytes], rule) -> pa.Table:
    """The pairs (a[p], b[p]) the rule accepts, with both signatures (``sig_of``: by label).
    A pair of pictures that several pairs of their keys found is compared once."""
    labels = sorted(set(a) | set(b))
    at = {label: i for i, label in enumerate(labels)}
    sigs = [sig_of[label] for label in labels]
    left, right = [at[x] for x in a], [at[x] for x in b]
    found = np.array([left, right, np.asarray(distance)], dtype=np.int64).reshape(3, -1)
    pairs, seen = np.unique(found, axis=1, return_inverse=True)
    ok = verify_pairs(sigs, *pairs, rule)[seen.reshape(-1)]
    ok = np.flatnonzero(ok).tolist()
    return pa.table({"a": [a[p] for p in ok], "b": [b[p] for p in ok],
                     "sig_a": [sigs[left[p]] for p in ok], "sig_b": [sigs[right[p]] for p in ok]},
                    schema=PAIRS)  # fmt: skip


def verify_buckets(table: pa.Table, sig_of: dict[str, bytes], rule: NearRule) -> pa.Table:
    """``BUCKETS`` rows -> the pairs the rule accepts (``PAIRS``)."""
    a, b, distance = (pc.list_flatten(table[c]) for c in ("a", "b", "distance"))
    return verified(a.to_pylist(), b.to_pylist(), distance.to_numpy(), sig_of, rule)


def survivors(table: pa.Table, rule: NearRule) -> pa.Table:
    """All accepted pairs (``PAIRS``) -> every near group member's survivor (``SURVIVORS``)."""
    rows = table.to_pylist()
    sig_of = {r["a"]: r["sig_a"] for r in rows} | {r["b"]: r["sig_b"] for r in rows}
    survivor_of = groups.near_groups([(r["a"], r["b"]) for r in rows], sig_of, rule)
    return pa.table({"label": list(survivor_of), "survivor": list(survivor_of.values())},
                    schema=SURVIVORS)  # fmt: skip


def survivor_index(table: pa.Table) -> dict[str, str]:
    return dict(zip(table["label"].to_pylist(), table["survivor"].to_pylist(), strict=True))


def survivor_counts(table: pa.Table) -> dict[str, int]:
    stars = int(pc.sum(pc.equal(table["label"], table["survivor"])).as_py() or 0)
    return {"groups": stars, "members": table.num_rows}


def dedup_stats(exact: dict, scheme=None, buckets=None, accepted=0, near=None) -> DedupStats:
    """The build's dedup counters from the steps' counts (``groups.exact_counts``; with near
    dedup: the banding, ``bucket_counts``, the accepted pairs, ``survivor_counts``)."""
    stats = DedupStats(**{k: v for k, v in exact.items() if k in DedupStats.model_fields})
    if scheme is not None:
        stats.near_index = scheme.describe()
        stats.near_candidate_pairs = buckets.get("pairs", 0)
        stats.near_crowded_buckets = buckets.get("crowded", 0)
        stats.near_rejected_by_verify = stats.near_candidate_pairs - accepted
        stats.near_groups = near.get("groups", 0)
        stats.near_dropped = near.get("members", 0) - stats.near_groups
    return stats


def views(rows: Sequence[dict[str, Any]], exact: bool, rule: NearRule, match) -> list[groups.Item]:
    """The views (``groups.view``) of the rows dedup takes part in."""
    found = (groups.view(row, exact, rule, match) for row in rows)
    return [it for it in found if it is not None]


def exact_items(rows: Sequence[dict[str, Any]], spec: DedupSpec, rule: NearRule, eval_sets=None):
    """Every row dedup takes part in, after the exact step (as ``groups.Item``)."""
    match = EvalIndex(eval_sets, rule).match_row if eval_sets else None
    by_key: dict[str, list[groups.Item]] = {}
    for item in views(rows, spec.exact, rule, match):
        by_key.setdefault(item.exact_key, []).append(item)
    return [it for group in by_key.values() for it in groups.exact_group(group)]


def buckets_of(bands: pa.Table, scheme: candidates.BandScheme, rule: NearRule) -> pa.Table:
    """The candidate pairs (``BUCKETS``) of every band bucket among ``BANDS`` rows (whole
    buckets: all of a build here, a shuffle partition on Ray). A bucket that may be crowded
    (more than ``crowded_bucket`` rows, with verification) gets a row of its own
    (``bucket``); all others are paired together, vectorised, one row per chunk of pairs
    (``candidates.runs_pairs``): most buckets of sampled banding hold two or three rows."""
    bands = bands.sort_by("bkey")
    keys = bands["bkey"].to_numpy()
    starts, ends = candidates.run_bounds(keys.size, keys)
    m = rule.crowded_bucket if rule.verify else 0
    alone = (ends - starts > m) if m else np.zeros(starts.size, dtype=bool)
    whole = zip(starts[alone].tolist(), ends[alone].tolist(), strict=True)
    found = [bucket(bands.slice(s, e - s), scheme, rule) for s, e in whole]
    few = ~alone & (ends - starts > 1)
    if few.any():
        names, (h, owner, own, kind) = _images(bands)
        band = scheme.bands_of_keys(keys)
        runs = starts[few], ends[few]
        found += [_bucket_row(names, i, j, d)
                  for i, j, d in candidates.runs_pairs(h, owner, own, kind, band, *runs, scheme, rule)]  # fmt: skip
    return pa.concat_tables([BUCKETS.empty_table(), *found])


def plan_dedup(
    rows: Sequence[dict[str, Any]],
    spec: DedupSpec,
    eval_sets: Sequence | None = None,
    rule: NearRule | None = None,
) -> tuple[dict[str, groups.Decision], DedupStats]:
    """Decisions by key for every row dedup touches; rows it does not touch are absent.
    ``rule``: instead of ``spec.near``'s (e.g. ``unscreened()``, to check the screens)."""
    rule = rule or NearRule.from_spec(spec.near)
    items = exact_items(rows, spec, rule, eval_sets)
    counts = groups.exact_counts(items)
    stats, survivor_of = dedup_stats(counts), {}
    if counts["near_nodes"] > 1:
        table = table_of(items)
        scheme = candidates.scheme_for(rule, counts["near_nodes"])
        buckets = buckets_of(band_rows(table, scheme), scheme, rule)
        accepted = verify_buckets(buckets, signature_index(table), rule)
        members = survivors(accepted, rule)
        survivor_of = survivor_index(members)
        found = bucket_counts(buckets), accepted.num_rows, survivor_counts(members)
        stats = dedup_stats(counts, scheme, *found)
    decisions = (groups.decide(it, survivor_of) for it in items)
    return {d.key: d for d in decisions if d is not None}, stats


def dedup_rows(
    rows: Sequence[dict[str, Any]], spec: DedupSpec, eval_sets: Sequence | None = None
) -> tuple[list[dict[str, Any]], DedupStats]:
    """Dedup ``Candidate.to_row()`` dicts; the same rows in the same order out."""
    decisions, stats = plan_dedup(rows, spec, eval_sets)
    return [groups.apply_decision(dict(r), decisions.get(r["key"])) for r in rows], stats

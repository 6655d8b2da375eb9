"""``dedup_dataset``: the rules of ``core.py``, distributed with Ray Data.

Stages (maps and group-bys over slim rows; only per-block counters reach the driver):

1. view + exact: per row, its eval-set match or dedup view (keys, label, pHash, signature),
   grouped by ``exact_key``; the smallest survivor label represents each group;
2. near: representatives exploded into one slim band row per band or table (label, pHash,
   detail hash, size: no signature), group-by band key, the pairs within the Hamming bound
   (in a crowded bucket: also close in the detail hash or of one size, ``lsh.Crowding``),
   then verified with both signatures (``verify.py``). Up to SIGNATURE_BROADCAST_BYTES the
   signatures are broadcast to the verifying workers; beyond, each pair gets them by two
   group-bys on its labels (a signature, ~2.4-4.7 KB, then travels twice and once per
   candidate pair it is in). Before, every band row carried its image's signature: 11 per
   image at k = 10, up to 255 with sampled tables;
3. components of verified pairs (``ray_components.py``: one task up to 100k pairs, else
   distributed min-label propagation), split into stars: members must verify against
   their survivor themselves (``verify.star_members``);
4. decisions: group-by exact representative, together with its component's label;
5. apply: the decision rows (only the rows dedup touched: drops and group survivors) are
   broadcast to a map over the input rows, joined on ``key`` there, and written onto their
   rows (drops + ``meta.dup_group`` / ``meta.dup_survivor``). The image-carrying rows are
   never shuffled; each worker holds the decision rows (~150 bytes each) in memory.

The input dataset is materialised once (read and decode do not run twice); the result is
returned lazily. Rows already dropped pass through untouched. Survivors do not depend on
parallelism, block sizes or order: every choice is a minimum over survivor labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mindvl.common.manifest import DedupStats
from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup import ray_tables as T
from mindvl.data_engine.dedup.bands import scheme_for
from mindvl.data_engine.dedup.decisions import Decision, apply_decision
from mindvl.data_engine.dedup.decontaminate import EvalIndex
from mindvl.data_engine.dedup.ray_components import components
from mindvl.data_engine.dedup.rule import NearRule

SLIM_ROWS_PER_PARTITION = 200_000
DD_COLUMNS = ("dd_group", "dd_survivor", "dd_op", "dd_reason")


# The exact stage's rows (slim, with their signatures) are broadcast to the workers that
# verify candidate pairs while their signatures take up to this many bytes (~2.4-4.7 KB
# each: 256 MiB is ~55-110k images); beyond, the pairs are joined with the signatures by
# two group-bys.
SIGNATURE_BROADCAST_BYTES = 256 << 20

_FETCHED: dict[str, pa.Table] = {}  # per worker process: one broadcast table, by token


def _fetched(refs: list[Any], schema: pa.Schema, derive=None) -> pa.Table:
    """The blocks behind ``refs`` as one table, passed through ``derive`` when given
    (fetched once per worker process and kept until another broadcast table is asked for)."""
    import ray

    token = ",".join(r.hex() for r in refs) + (derive.__name__ if derive else "")
    if token not in _FETCHED:
        _FETCHED.clear()
        tables = [t for t in ray.get(list(refs)) if t.num_rows]
        table = pa.concat_tables(tables).combine_chunks() if tables else schema.empty_table()
        _FETCHED[token] = derive(table) if derive else table
    return _FETCHED[token]


def _apply_decisions(table: pa.Table, refs: list[Any], input_names: list[str]) -> pa.Table:
    """Input rows with their decisions written on (a broadcast join on ``key``: the decision
    rows are the few rows dedup touched, so the image-carrying rows are never shuffled)."""
    table = table.cast(_output_schema(table.schema, input_names))
    decisions = _fetched(refs, T.DECISIONS)
    at = pc.index_in(table.column("key"), value_set=decisions.column("key"))
    hit = pc.is_valid(at)
    if not pc.any(hit).as_py():
        return table
    rows = table.filter(hit).to_pylist()
    found = decisions.take(at.filter(hit)).to_pylist()
    changed = [
        apply_decision(row, Decision(row["key"], *(d[c] for c in DD_COLUMNS)))
        for row, d in zip(rows, found, strict=True)
    ]
    rest = table.filter(pc.invert(hit))
    return pa.concat_tables([rest, pa.Table.from_pylist(changed, schema=table.schema)])


def _verify_broadcast(table: pa.Table, refs: list[Any], near) -> pa.Table:
    """``verify_links`` with the signatures of the exact stage's blocks (``refs``)."""
    return T.verify_links(table, _fetched(refs, T.EXACT, T.signature_table), near)


def _verified_pairs(exact, candidates, spec: DedupSpec, parts: int, counts: dict[str, int]):
    """(PAIRS rows of the candidate pairs (LINKS rows from the band buckets), each verified
    with both signatures; their pairs / verified / crowded counts). Up to
    SIGNATURE_BROADCAST_BYTES of signatures the exact stage's blocks are broadcast: each
    worker holds them all and verifies candidate blocks as the buckets emit them (one Ray
    execution from band rows to verdicts). Beyond, each pair gets its signatures by two
    group-bys on its labels (``attach_first``, then ``verify_group``), so no task holds
    more than one label's pairs."""
    if counts["signature_bytes"] <= SIGNATURE_BROADCAST_BYTES:
        refs = exact.to_arrow_refs()  # materialised already
        pairs = candidates.map_batches(
            _verify_broadcast,
            batch_format="pyarrow",
            batch_size=None,
            fn_args=(refs, NearRule.from_spec(spec.near)),
        ).materialize()
        found = T.total(pairs, T.pair_counts)
        return pairs, {k: found.get(k, 0) for k in ("pairs", "verified", "crowded")}
    candidates = candidates.materialize()
    found = T.total(candidates, T.candidate_counts)
    found = {k: found.get(k, 0) for k in ("pairs", "crowded")}
    signatures = exact.map_batches(T.signature_links, batch_format="pyarrow")
    pairs = (
        candidates.map_batches(T.pair_links, batch_format="pyarrow")
        .union(signatures)
        .groupby("key", num_partitions=parts)
        .map_groups(T.attach_first, batch_format="pyarrow")
        .union(signatures)
        .groupby("key", num_partitions=parts)
        .map_groups(
            T.verify_group, batch_format="pyarrow", fn_args=(NearRule.from_spec(spec.near),)
        )
        .materialize()
    )
    found["verified"] = T.total(pairs, T.pair_counts).get("verified", 0)
    return pairs, found


def _output_schema(schema: pa.Schema, names: list[str]) -> pa.Schema:
    """The input's columns; drop columns that were all-null (type ``null``) become strings."""
    fields = []
    for n in names:
        f = schema.field(n)
        if pa.types.is_null(f.type) and n in ("drop_stage", "drop_op", "drop_reason", "meta"):
            f = pa.field(n, pa.string())
        fields.append(f)
    return pa.schema(fields)


def _cc_as_exact_rows(table: pa.Table) -> pa.Table:
    n = table.num_rows
    return pa.table(
        {"key": [""] * n, "label": table.column("label"), "rep_label": table.column("node"),
         "same_pair": [False] * n, "is_rep": [False] * n, "in_group": [False] * n,
         "near_ok": [False] * n, "low": [False] * n, "phash": pa.array([0] * n, pa.int64()),
         "sig": pa.array([b""] * n, pa.binary()), "eval_hit": pa.array([-1] * n, pa.int64())},
        schema=T.EXACT,
    )  # fmt: skip


def dedup_dataset(
    ds, spec: DedupSpec, eval_sets: Sequence[Sequence[Any]] | None = None
) -> tuple[Any, DedupStats]:
    """Global dedup of a Dataset of ``Candidate.to_row()`` rows. ``eval_sets``: eval image
    fingerprints (see ``decontaminate.py``); required when ``spec.decontaminate`` is set."""
    if not isinstance(eval_sets, (list, tuple)):
        eval_sets = None  # e.g. the build's OpContext: it carries no eval fingerprints
    if spec.decontaminate and not eval_sets:
        raise ValueError("dedup.decontaminate names eval sets but no eval fingerprints were given")
    rule = NearRule.from_spec(spec.near)
    index = EvalIndex(eval_sets, rule) if eval_sets else None
    stats = DedupStats()
    ds = ds.materialize()
    # shuffle partitions by data size, not by block count: slim rows are ~300 bytes
    parts = max(1, min(256, math.ceil(ds.count() / SLIM_ROWS_PER_PARTITION)))

    exact = (
        ds.map_batches(T.view_batch, batch_format="pyarrow", fn_kwargs={"spec": spec, "index": index})
        .groupby("exact_key", num_partitions=parts)
        .map_groups(T.exact_group, batch_format="pyarrow")
        .materialize()
    )  # fmt: skip
    counts = T.total(exact, T.exact_counts)
    if not counts or (
        counts["decontaminated"] + counts["exact_dropped"] == 0 and counts["near_nodes"] < 2
    ):
        stats.low_information_exact_only = counts.get("low_information_exact_only", 0)
        return ds, stats  # nothing to drop: rows pass through as they are
    stats.decontaminated = counts["decontaminated"]
    stats.exact_groups = counts["exact_groups"]
    stats.exact_dropped = counts["exact_dropped"]
    stats.low_information_exact_only = counts["low_information_exact_only"]

    grouped = exact
    if spec.near.enabled and counts["near_nodes"] > 1:
        scheme = scheme_for(rule, counts["near_nodes"])
        stats.near_index = scheme.describe()
        near = scheme, rule
        candidates = (
            exact.map_batches(T.band_rows, batch_format="pyarrow", fn_kwargs={"scheme": scheme})
            .groupby("bkey", num_partitions=parts)
            .map_groups(T.band_candidates, batch_format="pyarrow", fn_args=near)
        )
        pairs, pair_stats = _verified_pairs(exact, candidates, spec, parts, counts)
        stats.near_candidate_pairs = pair_stats["pairs"]
        stats.near_crowded_buckets = pair_stats["crowded"]
        stats.near_rejected_by_verify = pair_stats["pairs"] - pair_stats["verified"]
        if pair_stats.get("verified", 0):
            cc = components(
                pairs, rule, num_partitions=parts, edges=pair_stats["verified"]
            ).materialize()
            cn = T.total(cc, T.cc_counts)
            stats.near_groups = cn["roots"]
            stats.near_dropped = cn["nodes"] - cn["roots"]
            grouped = exact.union(cc.map_batches(_cc_as_exact_rows, batch_format="pyarrow"))
    decisions = grouped.groupby("rep_label", num_partitions=parts).map_groups(
        T.group_decisions, batch_format="pyarrow"
    )

    refs = decisions.materialize().to_arrow_refs()
    input_names = ds.schema().base_schema.names
    out = ds.map_batches(
        _apply_decisions, batch_format="pyarrow", batch_size=None, fn_args=(refs, input_names)
    )
    return out, stats

"""``dedup_dataset``: dedup's steps (the table functions of ``local.py``) wired with Ray
Data, so the two runners agree by construction.

Shuffles: the exact step groups each row's view by ``exact_key``; banding groups one slim
row per representative, band and candidate key (no signature) into partitions by band key
(``local.buckets_of`` pairs each partition's buckets: most hold two or three rows); a
candidate pair gets both signatures from a broadcast of the exact rows while these fit in
``SIGNATURE_BROADCAST_BYTES``, beyond by two group-bys on its labels. Near groups are built
in one task. The input is materialised once; decisions reach it by a broadcast join on
``key``, so the image-carrying rows are never shuffled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup import groups, local
from mindvl.data_engine.dedup.candidates import scheme_for
from mindvl.data_engine.dedup.decontaminate import EvalIndex
from mindvl.data_engine.dedup.rule import NearRule

SLIM_ROWS_PER_PARTITION = 200_000  # shuffle partitions by data size: slim rows ~300 bytes
KEYS_PER_IMAGE = 10  # band rows per image and band as partitions reckon: own, trim, 5 crops, 3 icon
SIGNATURE_BROADCAST_BYTES = 256 << 20  # ~38-110k signatures of 2.4-7 KB (alpha: +2.3 KB)
# a pair (key: one label, other: the other, sig: the signature joined so far, or null) or
# a signature row (key: a label, other: null, sig: its signature), grouped by key together
LINKS = pa.schema(
    [("key", pa.string()), ("other", pa.string()), ("distance", pa.int16()), ("sig", pa.binary())]
)
DECISIONS = pa.schema(
    [("key", pa.string()), ("group", pa.string()), ("survivor", pa.string()),
     ("op", pa.string()), ("reason", pa.string())]
)  # fmt: skip
_FETCHED: dict[str, Any] = {}  # per worker process: one broadcast table, by token


def _fetched(refs: list[Any], schema: pa.Schema, derive=None) -> Any:
    """The blocks behind ``refs`` as one table, passed through ``derive`` when given
    (fetched once per worker process and kept until another broadcast is asked for)."""
    import ray

    token = ",".join(r.hex() for r in refs) + (derive.__name__ if derive else "")
    if token not in _FETCHED:
        _FETCHED.clear()
        tables = [t for t in ray.get(list(refs)) if t.num_rows]
        table = pa.concat_tables(tables).combine_chunks() if tables else schema.empty_table()
        _FETCHED[token] = derive(table) if derive else table
    return _FETCHED[token]


def _views(table: pa.Table, exact: bool, rule: NearRule, match) -> pa.Table:
    return local.table_of(local.views(table.to_pylist(), exact, rule, match))


def _exact_group(table: pa.Table) -> pa.Table:
    return local.table_of(groups.exact_group(local.items_of(table)))


def _exact_counts(table: pa.Table) -> dict[str, int]:
    return groups.exact_counts(local.items_of(table))


def _verify_broadcast(table: pa.Table, refs: list[Any], rule: NearRule) -> pa.Table:
    """Bucket rows -> accepted pairs, signatures from the broadcast exact rows."""
    return local.verify_buckets(table, _fetched(refs, local.ITEMS, local.signature_index), rule)


def _band_rows(table: pa.Table, scheme, parts: int) -> pa.Table:
    """``local.band_rows`` with each row's partition: its band key modulo ``parts``."""
    bands = local.band_rows(table, scheme)
    return bands.append_column("part", pa.array(bands["bkey"].to_numpy() % parts))


def _pair_links(table: pa.Table) -> pa.Table:
    a, b = pc.list_flatten(table["a"]), pc.list_flatten(table["b"])
    return pa.table({"key": a, "other": b, "distance": pc.list_flatten(table["distance"]),
                     "sig": pa.nulls(len(a), pa.binary())}, schema=LINKS)  # fmt: skip


def _signature_links(table: pa.Table) -> pa.Table:
    reps = local.near_reps(table)
    n = reps.num_rows
    return pa.table({"key": reps["label"], "other": pa.nulls(n, pa.string()),
                     "distance": pa.nulls(n, pa.int16()), "sig": reps["sig"]}, schema=LINKS)  # fmt: skip


def _split_links(table: pa.Table) -> tuple[bytes | None, pa.Table]:
    own = table.filter(pc.is_null(table["other"]))
    return (own["sig"][0].as_py() if own.num_rows else None), table.filter(
        pc.is_valid(table["other"])
    )


def _attach_first(table: pa.Table) -> pa.Table:
    """One label's signature and pairs -> the pairs keyed by their other label, carrying it."""
    sig, pairs = _split_links(table)
    return pa.table({"key": pairs["other"], "other": pairs["key"], "distance": pairs["distance"],
                     "sig": pa.array([sig] * pairs.num_rows, pa.binary())}, schema=LINKS)  # fmt: skip


def _verify_group(table: pa.Table, rule: NearRule) -> pa.Table:
    """One label's signature and its pairs (each with the other end's signature) ->
    the accepted pairs; this label's search terms are computed once."""
    sig, pairs = _split_links(table)
    a, b = pairs["other"].to_pylist(), pairs["key"].to_pylist()
    sig_of = dict(zip(a, pairs["sig"].to_pylist(), strict=True)) | dict.fromkeys(b, sig)
    return local.verified(a, b, pairs["distance"].to_numpy(), sig_of, rule)


def _accepted(exact, buckets, rule: NearRule, parts: int, signature_bytes: int):
    if signature_bytes <= SIGNATURE_BROADCAST_BYTES:
        refs = exact.to_arrow_refs()
        return buckets.map_batches(
            _verify_broadcast, batch_format="pyarrow", batch_size=None, fn_args=(refs, rule)
        )  # whole blocks: one screen and one verifier cache per block
    signatures = exact.map_batches(_signature_links, batch_format="pyarrow")
    return (
        buckets.map_batches(_pair_links, batch_format="pyarrow")
        .union(signatures).groupby("key", num_partitions=parts)
        .map_groups(_attach_first, batch_format="pyarrow")
        .union(signatures).groupby("key", num_partitions=parts)
        .map_groups(_verify_group, batch_format="pyarrow", fn_args=(rule,))
    )  # fmt: skip


def _decisions(table: pa.Table, refs: list[Any]) -> pa.Table:
    survivor_of = _fetched(refs, local.SURVIVORS, local.survivor_index) if refs else {}
    found = (groups.decide(it, survivor_of) for it in local.items_of(table))
    return pa.Table.from_pylist([d.__dict__ for d in found if d is not None], schema=DECISIONS)


def _apply(table: pa.Table, refs: list[Any], names: list[str]) -> pa.Table:
    """Input rows with their decisions written on (a broadcast join on ``key``)."""
    fields = [table.schema.field(n) for n in names]
    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in fields]
    table = table.cast(pa.schema(fields))  # all-null drop columns become strings
    decisions = _fetched(refs, DECISIONS)
    at = pc.index_in(table["key"], value_set=decisions["key"])
    hit = pc.is_valid(at)
    if not pc.any(hit).as_py():
        return table
    found = decisions.take(at.filter(hit)).to_pylist()
    rows = zip(table.filter(hit).to_pylist(), found, strict=True)
    changed = [groups.apply_decision(r, groups.Decision(**d)) for r, d in rows]
    rest = table.filter(pc.invert(hit))
    return pa.concat_tables([rest, pa.Table.from_pylist(changed, schema=table.schema)])


def _counter_row(table: pa.Table, fn) -> pa.Table:
    return pa.table({k: [v] for k, v in fn(table).items()})


def total(ds, fn) -> dict[str, int]:
    """Sums over the blocks of ``ds`` of the counters ``fn`` makes from each block."""
    out: dict[str, int] = {}
    blocks = ds.map_batches(_counter_row, batch_format="pyarrow", batch_size=None, fn_args=(fn,))
    for row in blocks.take_all():
        for k, v in row.items():
            out[k] = out.get(k, 0) + int(v)
    return out


def dedup_dataset(ds, spec: DedupSpec, eval_sets: Sequence[Sequence[Any]] | None = None):
    """Global dedup of a Dataset of ``Candidate.to_row()`` rows -> (Dataset, DedupStats).
    ``eval_sets``: eval image fingerprints; required when ``spec.decontaminate`` is set."""
    if spec.decontaminate and not eval_sets:
        raise ValueError("dedup.decontaminate names eval sets but no eval fingerprints were given")
    rule = NearRule.from_spec(spec.near)
    match = EvalIndex(eval_sets, rule).match_row if eval_sets else None
    ds = ds.materialize()
    parts = max(1, min(256, math.ceil(ds.count() / SLIM_ROWS_PER_PARTITION)))
    exact = (
        ds.map_batches(_views, batch_format="pyarrow", fn_args=(spec.exact, rule, match))
        .groupby("exact_key", num_partitions=parts)
        .map_groups(_exact_group, batch_format="pyarrow")
        .materialize()
    )
    counts = total(exact, _exact_counts)
    stats, refs = local.dedup_stats(counts), []
    drops = counts.get("decontaminated", 0) + counts.get("exact_dropped", 0)
    if drops == 0 and counts.get("near_nodes", 0) < 2:
        return ds, stats  # nothing to drop: rows pass through as they are
    if counts["near_nodes"] > 1:
        scheme = scheme_for(rule, counts["near_nodes"])
        rows = counts["near_nodes"] * scheme.n_bands * KEYS_PER_IMAGE
        band_parts = max(1, min(256, math.ceil(rows / SLIM_ROWS_PER_PARTITION)))
        buckets = (
            exact.map_batches(_band_rows, batch_format="pyarrow", fn_args=(scheme, band_parts))
            .groupby("part", num_partitions=band_parts)
            .map_groups(local.buckets_of, batch_format="pyarrow", fn_args=(scheme, rule))
            .materialize()
        )
        accepted = _accepted(exact, buckets, rule, parts, counts["signature_bytes"]).materialize()
        survivors = (
            accepted.repartition(1)
            .map_batches(local.survivors, batch_format="pyarrow", batch_size=None, fn_args=(rule,))
            .materialize()
        )  # one task: near groups span blocks
        found = total(buckets, local.bucket_counts), accepted.count()
        stats = local.dedup_stats(counts, scheme, *found, total(survivors, local.survivor_counts))
        refs = survivors.to_arrow_refs()
    decisions = exact.map_batches(_decisions, batch_format="pyarrow", fn_args=(refs,))
    refs = decisions.materialize().to_arrow_refs()
    names = ds.schema().base_schema.names
    out = ds.map_batches(_apply, batch_format="pyarrow", batch_size=None, fn_args=(refs, names))
    return out, stats

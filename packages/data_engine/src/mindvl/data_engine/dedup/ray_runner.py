"""``dedup_dataset``: the dedup steps wired with Ray Data. Every decision is made by the
functions ``local.plan_dedup`` calls, so the two paths agree by construction.

Shuffles: the exact step groups each row's view by ``exact_key``; banding groups one slim
row per representative, band and candidate key (no signature) by band key; a candidate pair
gets both signatures from a broadcast of the exact rows while these fit in
``SIGNATURE_BROADCAST_BYTES``, beyond by two group-bys on its labels. Near groups are built
in one task. The input is materialised once; decisions reach it by a broadcast join on
``key``, so the image-carrying rows are never shuffled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mindvl.common.manifest import DedupStats
from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup.candidates import (
    BandScheme,
    bucket_pairs,
    candidate_keys,
    crowding_for,
    detail_hash,
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

SLIM_ROWS_PER_PARTITION = 200_000  # shuffle partitions by data size: slim rows ~300 bytes
SIGNATURE_BROADCAST_BYTES = 256 << 20  # ~38-110k signatures of 2.4-7 KB (alpha: +2.3 KB)
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
# a pair (key: one label, other: the other, sig: the signature joined so far, or null) or
# a signature row (key: a label, other: null, sig: its signature), grouped by key together
LINKS = pa.schema(
    [("key", pa.string()), ("other", pa.string()), ("distance", pa.int16()), ("sig", pa.binary())]
)
PAIRS = pa.schema(
    [("a", pa.string()), ("b", pa.string()), ("sig_a", pa.binary()), ("sig_b", pa.binary())]
)
SURVIVORS = pa.schema([("label", pa.string()), ("survivor", pa.string())])
DECISIONS = pa.schema(
    [("key", pa.string()), ("group", pa.string()), ("survivor", pa.string()),
     ("op", pa.string()), ("reason", pa.string())]
)  # fmt: skip
_FETCHED: dict[str, Any] = {}  # per worker process: one broadcast table, by token


def _items(table: pa.Table) -> list[Item]:
    return [Item(**row) for row in table.to_pylist()]


def _table(items: list[Item]) -> pa.Table:
    return pa.Table.from_pylist([it.__dict__ for it in items], schema=ITEMS)


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


def _views(table: pa.Table, exact: bool, rule: NearRule, index: EvalIndex | None) -> pa.Table:
    match = index.match_row if index is not None else None
    found = (view(row, exact, rule, match) for row in table.to_pylist())
    return _table([it for it in found if it is not None])


def _exact_group(table: pa.Table) -> pa.Table:
    return _table(exact_group(_items(table)))


def _counts(table: pa.Table) -> pa.Table:
    return pa.table({k: [v] for k, v in exact_counts(_items(table)).items()})


def _near_reps(table: pa.Table) -> pa.Table:
    return table.filter(pc.and_(pc.equal(table["label"], table["rep_label"]), table["near_ok"]))


def _band_rows(table: pa.Table, scheme: BandScheme) -> pa.Table:
    """Each near-eligible representative once per band and candidate key, keyed by
    (band, value) (``candidates.candidate_keys``)."""
    table = _near_reps(table)
    sigs = table.column("sig").to_pylist()
    details = [detail_hash(sig) for sig in sigs]
    keys, owner, kind = candidate_keys(table["phash"].to_numpy(), sigs)
    idx = np.repeat(owner, scheme.n_bands)
    return pa.table(
        {"bkey": scheme.keys(keys).reshape(-1),
         "label": table.column("label").take(idx), "phash": np.repeat(keys, scheme.n_bands),
         "own": table.column("phash").take(idx),
         "detail": np.array([d[0] for d in details], dtype=np.uint64)[idx],
         "detail_kind": np.array([d[1] for d in details], dtype=np.int8)[idx],
         "size": np.array([d[2] for d in details], dtype=np.int64)[idx],
         "kind": np.repeat(kind, scheme.n_bands)},
        schema=BANDS,
    )  # fmt: skip


def _bucket(table: pa.Table, scheme: BandScheme, rule: NearRule) -> pa.Table:
    """One band bucket's candidate pairs (labels, smaller first; ``candidates.image_pairs``)
    as one row."""
    if table.num_rows < 2:
        return BUCKETS.empty_table()
    band = scheme.band_of_key(table.column("bkey")[0].as_py())
    labels = table.column("label").to_pylist()
    detail, kinds, sizes = (table.column(c).to_numpy() for c in ("detail", "detail_kind", "size"))
    crowding = crowding_for(rule, lambda at: (detail[at], kinds[at], sizes[at]))
    h, kind = table.column("phash").to_numpy(), table.column("kind").to_numpy()
    found, crowded = bucket_pairs(h, np.arange(table.num_rows), band, scheme, crowding)
    names, owner = np.unique(np.array(labels, dtype=object), return_inverse=True)
    own = np.zeros(names.size, dtype=np.uint64)
    own[owner] = table.column("own").to_numpy()
    radii = rule.crop_radius, scheme.max_hamming
    pairs = [image_pairs(a, c, owner, own, kind, h, *radii) for a, c, _ in found]
    # image_pairs puts the smaller index first, and names are sorted: a < b
    i, j, d = (
        np.concatenate(col) for col in zip(*(pairs or [(np.zeros(0, int),) * 3]), strict=True)
    )
    return pa.table({"a": [names[i].tolist()], "b": [names[j].tolist()],
                     "distance": [d.tolist()], "crowded": [crowded]}, schema=BUCKETS)  # fmt: skip


def _bucket_counts(table: pa.Table) -> pa.Table:
    pairs = int(pc.sum(pc.list_value_length(table["a"])).as_py() or 0)
    return pa.table({"pairs": [pairs], "crowded": [int(pc.sum(table["crowded"]).as_py() or 0)]})


def _verified(a: list[str], b: list[str], distance, sig_of: dict[str, bytes], rule) -> pa.Table:
    """The pairs (a[p], b[p]) the rule accepts, with both signatures (``sig_of``: by label)."""
    labels = sorted(set(a) | set(b))
    at = {label: i for i, label in enumerate(labels)}
    sigs = [sig_of[label] for label in labels]
    left, right = [at[x] for x in a], [at[x] for x in b]
    ok = np.flatnonzero(verify_pairs(sigs, left, right, distance, rule)).tolist()
    return pa.table({"a": [a[p] for p in ok], "b": [b[p] for p in ok],
                     "sig_a": [sigs[left[p]] for p in ok], "sig_b": [sigs[right[p]] for p in ok]},
                    schema=PAIRS)  # fmt: skip


def _signature_index(table: pa.Table) -> dict[str, bytes]:
    reps = _near_reps(table)
    return dict(zip(reps["label"].to_pylist(), reps["sig"].to_pylist(), strict=True))


def _verify_broadcast(table: pa.Table, refs: list[Any], rule: NearRule) -> pa.Table:
    """Bucket rows -> accepted pairs, signatures from the broadcast exact rows."""
    sig_of = _fetched(refs, ITEMS, _signature_index)
    a, b, distance = (pc.list_flatten(table[c]) for c in ("a", "b", "distance"))
    return _verified(a.to_pylist(), b.to_pylist(), distance.to_numpy(), sig_of, rule)


def _pair_links(table: pa.Table) -> pa.Table:
    a, b = pc.list_flatten(table["a"]), pc.list_flatten(table["b"])
    return pa.table({"key": a, "other": b, "distance": pc.list_flatten(table["distance"]),
                     "sig": pa.nulls(len(a), pa.binary())}, schema=LINKS)  # fmt: skip


def _signature_links(table: pa.Table) -> pa.Table:
    reps = _near_reps(table)
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
    return _verified(a, b, pairs["distance"].to_numpy(), sig_of, rule)


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


def _near_groups(table: pa.Table, rule: NearRule) -> pa.Table:
    rows = table.to_pylist()
    sig_of = {r["a"]: r["sig_a"] for r in rows} | {r["b"]: r["sig_b"] for r in rows}
    survivor_of = near_groups([(r["a"], r["b"]) for r in rows], sig_of, rule)
    return pa.table({"label": list(survivor_of), "survivor": list(survivor_of.values())},
                    schema=SURVIVORS)  # fmt: skip


def _survivor_counts(table: pa.Table) -> pa.Table:
    groups = int(pc.sum(pc.equal(table["label"], table["survivor"])).as_py() or 0)
    return pa.table({"groups": [groups], "members": [table.num_rows]})


def _survivor_index(table: pa.Table) -> dict[str, str]:
    return dict(zip(table["label"].to_pylist(), table["survivor"].to_pylist(), strict=True))


def _decisions(table: pa.Table, refs: list[Any]) -> pa.Table:
    survivor_of = _fetched(refs, SURVIVORS, _survivor_index) if refs else {}
    found = [d for d in (decide(it, survivor_of) for it in _items(table)) if d is not None]
    return pa.Table.from_pylist([d.__dict__ for d in found], schema=DECISIONS)


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
    rows = table.filter(hit).to_pylist()
    found = decisions.take(at.filter(hit)).to_pylist()
    changed = [apply_decision(r, Decision(**d)) for r, d in zip(rows, found, strict=True)]
    rest = table.filter(pc.invert(hit))
    return pa.concat_tables([rest, pa.Table.from_pylist(changed, schema=table.schema)])


def total(ds, fn) -> dict[str, int]:
    """Column sums of the tiny per-block counter tables ``fn`` makes from ``ds``."""
    out: dict[str, int] = {}
    for row in ds.map_batches(fn, batch_format="pyarrow", batch_size=None).take_all():
        for k, v in row.items():
            out[k] = out.get(k, 0) + int(v)
    return out


def dedup_dataset(ds, spec: DedupSpec, eval_sets: Sequence[Sequence[Any]] | None = None):
    """Global dedup of a Dataset of ``Candidate.to_row()`` rows -> (Dataset, DedupStats).
    ``eval_sets``: eval image fingerprints; required when ``spec.decontaminate`` is set."""
    if spec.decontaminate and not eval_sets:
        raise ValueError("dedup.decontaminate names eval sets but no eval fingerprints were given")
    rule = NearRule.from_spec(spec.near)
    index = EvalIndex(eval_sets, rule) if eval_sets else None
    ds = ds.materialize()
    parts = max(1, min(256, math.ceil(ds.count() / SLIM_ROWS_PER_PARTITION)))
    exact = (
        ds.map_batches(_views, batch_format="pyarrow", fn_args=(spec.exact, rule, index))
        .groupby("exact_key", num_partitions=parts)
        .map_groups(_exact_group, batch_format="pyarrow")
        .materialize()
    )
    counts = total(exact, _counts)
    stats = DedupStats(**{k: v for k, v in counts.items() if k in DedupStats.model_fields})
    if counts.get("decontaminated", 0) + counts.get("exact_dropped", 0) == 0 and (
        counts.get("near_nodes", 0) < 2
    ):
        return ds, stats  # nothing to drop: rows pass through as they are
    survivors: list[Any] = []
    if counts["near_nodes"] > 1:
        scheme = scheme_for(rule, counts["near_nodes"])
        stats.near_index = scheme.describe()
        buckets = (
            exact.map_batches(_band_rows, batch_format="pyarrow", fn_args=(scheme,))
            .groupby("bkey", num_partitions=parts)
            .map_groups(_bucket, batch_format="pyarrow", fn_args=(scheme, rule))
            .materialize()
        )
        found = total(buckets, _bucket_counts)
        stats.near_candidate_pairs, stats.near_crowded_buckets = found["pairs"], found["crowded"]
        accepted = _accepted(exact, buckets, rule, parts, counts["signature_bytes"]).materialize()
        stats.near_rejected_by_verify = stats.near_candidate_pairs - accepted.count()
        groups = (
            accepted.repartition(1)
            .map_batches(_near_groups, batch_format="pyarrow", batch_size=None, fn_args=(rule,))
            .materialize()
        )
        found = total(groups, _survivor_counts)
        stats.near_groups = found.get("groups", 0)
        stats.near_dropped = found.get("members", 0) - stats.near_groups
        survivors = groups.to_arrow_refs()
    decisions = exact.map_batches(_decisions, batch_format="pyarrow", fn_args=(survivors,))
    refs = decisions.materialize().to_arrow_refs()
    names = ds.schema().base_schema.names
    out = ds.map_batches(_apply, batch_format="pyarrow", batch_size=None, fn_args=(refs, names))
    return out, stats

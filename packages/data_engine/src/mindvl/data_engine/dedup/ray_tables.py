"""Row schemas and per-batch functions of the Ray dedup stages (plain Python over pyarrow
tables, so each is testable without Ray). Only slim rows travel between stages: keys,
labels, hashes and signatures (2.4-4.7 KB); image bytes stay put until decisions are
joined back. Band rows carry no signature (an image has one band row per band or table,
up to hundreds): a candidate pair gets its two signatures afterwards, from a broadcast of
them (``verify_links``) or by two group-bys on its labels (``attach_first``,
``verify_group``); ``ray_dedup._verified_pairs`` picks one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup.bands import BandScheme
from mindvl.data_engine.dedup.compare import verify_pairs
from mindvl.data_engine.dedup.decisions import (
    OP_EXACT,
    OP_NEAR,
    REASON_NEAR,
    REASON_SAME_PAIR,
    REASON_SAME_PIXELS,
    Decision,
    eval_decision,
    eval_match,
)
from mindvl.data_engine.dedup.decontaminate import EvalIndex
from mindvl.data_engine.dedup.detail_hash import detail_hash
from mindvl.data_engine.dedup.lsh import bucket_pairs, crowding_of_details
from mindvl.data_engine.dedup.rule import NearRule
from mindvl.data_engine.dedup.survivor import group_id, label_key
from mindvl.data_engine.dedup.view import dedup_item

VIEW = pa.schema(
    [
        ("key", pa.string()),
        ("label", pa.string()),
        ("exact_key", pa.string()),
        ("pair_key", pa.string()),
        ("near_ok", pa.bool_()),
        ("low", pa.bool_()),
        ("phash", pa.int64()),  # uint64 bits viewed as int64
        ("sig", pa.binary()),
        ("eval_hit", pa.int64()),  # -1: no eval image matched
    ]
)
EXACT = pa.schema(
    [
        ("key", pa.string()),
        ("label", pa.string()),
        ("rep_label", pa.string()),  # survivor label of the exact group
        ("same_pair", pa.bool_()),  # same pixels and text as the group's survivor
        ("is_rep", pa.bool_()),
        ("in_group", pa.bool_()),  # a representative whose group has other members
        ("near_ok", pa.bool_()),
        ("low", pa.bool_()),
        ("phash", pa.int64()),
        ("sig", pa.binary()),
        ("eval_hit", pa.int64()),
    ]
)
BANDS = pa.schema(
    [("bkey", pa.int64()), ("label", pa.string()), ("phash", pa.int64()),
     ("detail", pa.int64()), ("detail_kind", pa.int8()), ("size", pa.int64())]
)  # fmt: skip  # detail: ``detail_hash.detail_hash`` (uint64 bits as int64), for crowding
# Candidate pairs and the signatures they are joined with, one schema so they can be unioned
# and grouped by ``key``: a pair row (key = a label, other = the other label, distance = the
# pHash distance, sig = the signature of the pair's end already joined, or null) or a
# signature row (key = a label, other null, distance -1, sig = its signature).
LINKS = pa.schema(
    [("key", pa.string()), ("other", pa.string()), ("distance", pa.int16()), ("sig", pa.binary())]
)
SIGS = pa.schema([("label", pa.string()), ("sig", pa.binary())])
PAIRS = pa.schema(
    [("a", pa.string()), ("b", pa.string()), ("verified", pa.bool_()),
     ("sig_a", pa.binary()), ("sig_b", pa.binary())]  # signatures: verified pairs only
)  # fmt: skip
CROWD_MARKER = ""  # a LINKS row with this key (a PAIRS row with this a) marks one crowded bucket
DECISIONS = pa.schema(
    [
        ("key", pa.string()),
        ("dd_group", pa.string()),
        ("dd_survivor", pa.string()),
        ("dd_op", pa.string()),
        ("dd_reason", pa.string()),
    ]
)


def view_batch(table: pa.Table, spec: DedupSpec, index: EvalIndex | None) -> pa.Table:
    out = []
    for row in table.to_pylist():
        hit = eval_match(row, index)
        item = dedup_item(row, spec) if hit is None else None
        if hit is not None:
            tag = "eval:" + row["key"]  # a group of its own, apart from every other row
            out.append({"key": row["key"], "label": tag, "exact_key": tag,
                        "pair_key": "",
                        "near_ok": False, "low": False, "phash": 0, "sig": b"",
                        "eval_hit": hit})  # fmt: skip
        elif item is not None:
            out.append({"key": item.key, "label": item.label, "exact_key": item.exact_key,
                        "pair_key": item.pair_key, "near_ok": item.near_ok,
                        "low": item.low_information,
                        "phash": int(np.uint64(item.phash).view(np.int64)),
                        "sig": item.signature, "eval_hit": -1})  # fmt: skip
    return pa.Table.from_pylist(out, schema=VIEW)


def exact_group(table: pa.Table) -> pa.Table:
    """One exact group (equal ``exact_key``): the smallest label is its representative."""
    rows = sorted(table.to_pylist(), key=lambda r: r["label"])
    rep = rows[0]
    out = []
    for i, r in enumerate(rows):
        out.append({"key": r["key"], "label": r["label"], "rep_label": rep["label"],
                    "same_pair": r["pair_key"] == rep["pair_key"], "is_rep": i == 0,
                    "in_group": i == 0 and len(rows) > 1, "near_ok": r["near_ok"],
                    "low": r["low"], "phash": r["phash"], "sig": r["sig"],
                    "eval_hit": r["eval_hit"]})  # fmt: skip
    return pa.Table.from_pylist(out, schema=EXACT)


def band_rows(table: pa.Table, scheme: BandScheme) -> pa.Table:
    """Each near-eligible representative, once per band, keyed by (band index, band value),
    with its detail hash and size for the crowding rule (no signature)."""
    table = table.filter(pc.and_(table.column("is_rep"), table.column("near_ok")))
    h = table.column("phash").to_numpy().astype(np.int64).view(np.uint64)
    details = [detail_hash(sig) for sig in table.column("sig").to_pylist()]
    detail = np.array([d[0] for d in details], dtype=np.uint64).view(np.int64)
    keys = scheme.keys(h)  # (n, n_bands)
    idx = np.repeat(np.arange(table.num_rows), scheme.n_bands)
    return pa.table(
        {
            "bkey": keys.reshape(-1),
            "label": table.column("label").take(idx),
            "phash": table.column("phash").take(idx),
            "detail": detail[idx],
            "detail_kind": np.array([d[1] for d in details], dtype=np.int8)[idx],
            "size": np.array([d[2] for d in details], dtype=np.int64)[idx],
        },
        schema=BANDS,
    )


def band_candidates(table: pa.Table, scheme: BandScheme, near: NearRule) -> pa.Table:
    """Pairs in one band bucket within ``max_hamming`` (a crowded bucket: also close in the
    detail hash or of one size, ``lsh.Crowding``) as LINKS pair rows keyed by the smaller
    label; a pair is emitted only by the first band its two hashes share, so every pair
    appears exactly once overall. A crowded bucket adds a marker row (key "")."""
    n = table.num_rows
    if n < 2:
        return LINKS.empty_table()
    band = scheme.band_of_key(table.column("bkey")[0].as_py())
    h = table.column("phash").to_numpy().astype(np.int64).view(np.uint64)
    labels = table.column("label").to_pylist()
    crowding = crowding_of_details(
        near,
        table.column("detail").to_numpy().astype(np.int64).view(np.uint64),
        table.column("detail_kind").to_numpy(),
        table.column("size").to_numpy(),
    )
    found, crowded = bucket_pairs(h, np.arange(n), band, scheme, crowding)
    out: dict[str, list[Any]] = {"key": [], "other": [], "distance": []}
    for a, c, d in found:
        for i, j, dist in zip(a.tolist(), c.tolist(), d.tolist(), strict=True):
            la, lb = sorted((labels[i], labels[j]))
            out["key"].append(la)
            out["other"].append(lb)
            out["distance"].append(dist)
    if crowded:  # a marker row: counted, never a pair
        out["key"].append(CROWD_MARKER)
        out["other"].append(CROWD_MARKER)
        out["distance"].append(-1)
    out["sig"] = [None] * len(out["key"])
    return pa.table(out, schema=LINKS)


def candidate_counts(table: pa.Table) -> pa.Table:
    markers = int(pc.sum(pc.equal(table.column("key"), CROWD_MARKER).cast(pa.int64())).as_py() or 0)
    return pa.table({"pairs": [table.num_rows - markers], "crowded": [markers]})


def pair_links(table: pa.Table) -> pa.Table:
    """The candidate pairs among LINKS rows (crowd markers left out)."""
    return table.filter(pc.not_equal(table.column("key"), CROWD_MARKER))


def signature_links(table: pa.Table) -> pa.Table:
    """A LINKS signature row for each near-eligible representative (EXACT rows)."""
    sigs = signature_table(table)
    n = sigs.num_rows
    return pa.table(
        {"key": sigs.column("label"), "other": pa.nulls(n, pa.string()),
         "distance": pa.array([-1] * n, pa.int16()), "sig": sigs.column("sig")},
        schema=LINKS,
    )  # fmt: skip


def _split_links(table: pa.Table) -> tuple[bytes | None, pa.Table]:
    """(the group's own signature, its pair rows) of one ``key`` group of LINKS rows."""
    own = table.filter(pc.less(table.column("distance"), 0))
    pairs = table.filter(pc.greater_equal(table.column("distance"), 0))
    return (own.column("sig")[0].as_py() if own.num_rows else None), pairs


def attach_first(table: pa.Table) -> pa.Table:
    """One label's group (its signature row and the pairs keyed by it) -> the pairs keyed by
    their other label, each carrying this label's signature."""
    sig, pairs = _split_links(table)
    n = pairs.num_rows
    if n == 0 or sig is None:
        return LINKS.empty_table()
    return pa.table(
        {"key": pairs.column("other"), "other": pairs.column("key"),
         "distance": pairs.column("distance"), "sig": pa.array([sig] * n, pa.binary())},
        schema=LINKS,
    )  # fmt: skip


def _pair_rows(a, b, ok: list, sig_a: list, sig_b: list) -> pa.Table:
    return pa.table(
        {"a": a, "b": b, "verified": ok,
         "sig_a": [s if v else None for s, v in zip(sig_a, ok, strict=True)],
         "sig_b": [s if v else None for s, v in zip(sig_b, ok, strict=True)]},
        schema=PAIRS,
    )  # fmt: skip


def verify_group(table: pa.Table, near: NearRule) -> pa.Table:
    """One label's group (its signature row and the pairs from ``attach_first`` keyed by it,
    each with the other end's signature) -> PAIRS rows, verified; every pair here shares
    this label's image, whose search terms are computed once."""
    sig, pairs = _split_links(table)
    n = pairs.num_rows
    if n == 0 or sig is None:
        return PAIRS.empty_table()
    others = pairs.column("sig").to_pylist()
    ok = verify_pairs(
        [sig, *others],
        np.arange(1, n + 1),
        np.zeros(n, dtype=np.int64),
        pairs.column("distance").to_numpy(),
        near,
    ).tolist()
    return _pair_rows(pairs.column("other"), pairs.column("key"), ok, others, [sig] * n)


def signature_table(table: pa.Table) -> pa.Table:
    """(label, sig) of each near-eligible representative (EXACT rows)."""
    table = table.filter(pc.and_(table.column("is_rep"), table.column("near_ok")))
    return pa.table({"label": table.column("label"), "sig": table.column("sig")}, schema=SIGS)


def verify_links(table: pa.Table, signatures: pa.Table, near: NearRule) -> pa.Table:
    """Candidate LINKS rows -> PAIRS rows, verified, their signatures looked up in
    ``signatures`` (a ``signature_table`` of every near-eligible image, held whole); a crowd
    marker stays a marker (a = b = "", never an edge)."""
    markers = table.num_rows
    table = pair_links(table)
    markers -= table.num_rows
    out = [_marker_rows(markers)] if markers else []
    if table.num_rows:
        ends = pa.concat_arrays([table.column(c).combine_chunks() for c in ("key", "other")])
        labels, where = np.unique(ends.to_numpy(zero_copy_only=False), return_inverse=True)
        value_set = signatures.column("label")
        at = pc.index_in(pa.array(labels.tolist(), pa.string()), value_set=value_set)
        if at.null_count:
            raise ValueError("a candidate pair names an image without a signature")
        sigs = signatures.column("sig").take(at).to_pylist()
        n = table.num_rows
        left, right = where[:n], where[n:]
        ok = verify_pairs(sigs, left, right, table.column("distance").to_numpy(), near).tolist()
        sig_a, sig_b = [sigs[i] for i in left.tolist()], [sigs[i] for i in right.tolist()]
        out.append(_pair_rows(table.column("key"), table.column("other"), ok, sig_a, sig_b))
    return pa.concat_tables(out) if out else PAIRS.empty_table()


def _marker_rows(n: int) -> pa.Table:
    return pa.table(
        {"a": [CROWD_MARKER] * n, "b": [CROWD_MARKER] * n, "verified": [False] * n,
         "sig_a": pa.nulls(n, pa.binary()), "sig_b": pa.nulls(n, pa.binary())},
        schema=PAIRS,
    )  # fmt: skip


def decision_rows(decisions: list[Decision]) -> pa.Table:
    return pa.table(
        {
            "key": [d.key for d in decisions],
            "dd_group": [d.group for d in decisions],
            "dd_survivor": [d.survivor for d in decisions],
            "dd_op": [d.op for d in decisions],
            "dd_reason": [d.reason for d in decisions],
        },
        schema=DECISIONS,
    )


def group_decisions(table: pa.Table) -> pa.Table:
    """One exact group plus, if its representative is in a near component, that component's
    label (a row with ``key`` = ""): decisions for every member and the representative."""
    rows = table.to_pylist()
    if rows[0]["eval_hit"] >= 0:  # a decontaminated row: a group of its own
        return decision_rows([eval_decision(r["key"], r["eval_hit"]) for r in rows])
    rep_label = rows[0]["rep_label"]
    final = next((r["label"] for r in rows if r["key"] == ""), rep_label)
    top_key = label_key(final)
    gid = group_id(top_key)
    near_member = any(r["key"] == "" for r in rows)
    out = []
    for r in rows:
        if r["key"] == "":
            continue
        if not r["is_rep"]:
            reason = REASON_SAME_PAIR if r["same_pair"] else REASON_SAME_PIXELS
            out.append(Decision(r["key"], gid, top_key, OP_EXACT, reason))
        elif final != rep_label:
            out.append(Decision(r["key"], gid, top_key, OP_NEAR, REASON_NEAR))
        elif r["in_group"] or near_member:
            out.append(Decision(r["key"], gid))
    return decision_rows(out)


def exact_counts(table: pa.Table) -> pa.Table:
    """Per-block counters of the exact stage (summed on the driver)."""
    rows = table.select(["is_rep", "in_group", "low", "eval_hit"]).to_pylist()
    near = pc.sum(pc.and_(table.column("is_rep"), table.column("near_ok")).cast(pa.int64()))
    sig_bytes = pc.sum(pc.binary_length(table.column("sig"))).as_py() if table.num_rows else 0
    return pa.table({
        "decontaminated": [sum(r["eval_hit"] >= 0 for r in rows)],
        "exact_groups": [sum(r["in_group"] for r in rows)],
        "exact_dropped": [sum(not r["is_rep"] for r in rows)],
        "low_information_exact_only": [sum(r["is_rep"] and r["low"] for r in rows)],
        "near_nodes": [int(near.as_py() or 0)],
        "signature_bytes": [int(sig_bytes or 0)],  # of every row: the broadcast's size
    })  # fmt: skip


def pair_counts(table: pa.Table) -> pa.Table:
    verified_pairs = int(pc.sum(table.column("verified").cast(pa.int64())).as_py() or 0)
    markers = int(pc.sum(pc.equal(table.column("a"), CROWD_MARKER).cast(pa.int64())).as_py() or 0)
    return pa.table(
        {"pairs": [table.num_rows - markers], "verified": [verified_pairs], "crowded": [markers]}
    )


def cc_counts(table: pa.Table) -> pa.Table:
    roots = int(
        pc.sum(pc.equal(table.column("node"), table.column("label")).cast(pa.int64())).as_py() or 0
    )
    return pa.table({"nodes": [table.num_rows], "roots": [roots]})


def total(ds, fn) -> dict[str, int]:
    """Column sums of the tiny per-block counter tables ``fn`` makes from ``ds``."""
    out: dict[str, int] = {}
    for row in ds.map_batches(fn, batch_format="pyarrow", batch_size=None).take_all():
        for k, v in row.items():
            out[k] = out.get(k, 0) + int(v)
    return out

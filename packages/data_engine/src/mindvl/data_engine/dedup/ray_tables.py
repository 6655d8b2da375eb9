"""Row schemas and per-batch functions of the Ray dedup stages (plain Python over pyarrow
tables, so each is testable without Ray). Only slim rows travel between stages: keys,
labels, hashes and 192-byte thumbnails; image bytes stay put until decisions are joined back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mindvl.common.recipe import DedupSpec, NearDedupSpec
from mindvl.data_engine.dedup.bands import BandScheme
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
from mindvl.data_engine.dedup.lsh import bucket_pairs, crowding_for
from mindvl.data_engine.dedup.screen import screen_pairs
from mindvl.data_engine.dedup.survivor import group_id, label_key
from mindvl.data_engine.dedup.verify import PairVerifier
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
    [("bkey", pa.int64()), ("label", pa.string()), ("phash", pa.int64()), ("sig", pa.binary())]
)
PAIRS = pa.schema(
    [("a", pa.string()), ("b", pa.string()), ("verified", pa.bool_()),
     ("sig_a", pa.binary()), ("sig_b", pa.binary())]  # signatures: verified pairs only
)  # fmt: skip
CROWD_MARKER = ""  # a PAIRS row with this label marks one crowded bucket (not a pair)
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
    """Each near-eligible representative, once per band, keyed by (band index, band value)."""
    table = table.filter(pc.and_(table.column("is_rep"), table.column("near_ok")))
    h = table.column("phash").to_numpy().astype(np.int64).view(np.uint64)
    keys = scheme.keys(h)  # (n, n_bands)
    idx = np.repeat(np.arange(table.num_rows), scheme.n_bands)
    return pa.table(
        {
            "bkey": keys.reshape(-1),
            "label": table.column("label").take(idx),
            "phash": table.column("phash").take(idx),
            "sig": table.column("sig").take(idx),
        },
        schema=BANDS,
    )


def band_pairs(table: pa.Table, scheme: BandScheme, near: NearDedupSpec) -> pa.Table:
    """Pairs in one band bucket within ``max_hamming`` (a crowded bucket: also close in the
    detail hash or of one size, ``lsh.Crowding``), each verified; a pair is emitted only by
    the first band its two hashes share, so every pair appears exactly once overall."""
    n = table.num_rows
    if n < 2:
        return PAIRS.empty_table()
    band = scheme.band_of_key(table.column("bkey")[0].as_py())
    h = table.column("phash").to_numpy().astype(np.int64).view(np.uint64)
    labels = table.column("label").to_pylist()
    sigs = table.column("sig").to_pylist()
    crowding = crowding_for(near, sigs)
    found, crowded = bucket_pairs(h, np.arange(n), band, scheme, crowding)
    left = np.concatenate([a for a, _, _ in found]) if found else np.zeros(0, np.int64)
    right = np.concatenate([c for _, c, _ in found]) if found else np.zeros(0, np.int64)
    distance = np.concatenate([d for _, _, d in found]) if found else np.zeros(0, np.uint8)
    verified = np.ones(left.size, dtype=bool)
    if near.verify:
        verified = screen_pairs(sigs, left, right, distance, near.crop_only_beyond)
        verifier = PairVerifier()
        for p in np.flatnonzero(verified).tolist():
            verified[p] = verifier.agree(sigs[left[p]], sigs[right[p]])
    out: dict[str, list[Any]] = {"a": [], "b": [], "verified": [], "sig_a": [], "sig_b": []}
    for i, j, ok in zip(left.tolist(), right.tolist(), verified.tolist(), strict=True):
        (la, sa), (lb, sb) = sorted(((labels[i], sigs[i]), (labels[j], sigs[j])))
        out["a"].append(la)
        out["b"].append(lb)
        out["verified"].append(ok)
        out["sig_a"].append(sa if ok else None)
        out["sig_b"].append(sb if ok else None)
    if crowded:  # a marker row: counted, never an edge
        for col, value in (("a", CROWD_MARKER), ("b", CROWD_MARKER), ("verified", False)):
            out[col].append(value)
        out["sig_a"].append(None)
        out["sig_b"].append(None)
    return pa.table(out, schema=PAIRS)


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
    evals = sum(r["eval_hit"] >= 0 for r in rows)
    return pa.table({
        "decontaminated": [evals],
        "exact_groups": [sum(r["in_group"] for r in rows)],
        "exact_dropped": [sum(not r["is_rep"] for r in rows)],
        "low_information_exact_only": [sum(r["is_rep"] and r["low"] for r in rows)],
        "near_nodes": [sum(r["is_rep"] and r["near_ok"] for r in table.select(["is_rep", "near_ok"]).to_pylist())],
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

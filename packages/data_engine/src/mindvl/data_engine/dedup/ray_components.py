"""Connected components of the verified near-duplicate pairs, distributed with Ray Data.

Min-label propagation: node ids are survivor labels, so the smallest label of a component
is its survivor. Each round is one group-by on node over the edges (both directions) and
the current messages: a node takes the smallest label it has heard of and sends it to its
neighbours. Rounds stop when no node's label changed; their number is the largest
component's diameter plus one (duplicate groups are small stars, so two or three rounds).
Nothing is collected onto the driver except the per-round count of changed labels.

Each round's messages are re-blocked to ``num_partitions`` blocks: a group-by's output has
as many blocks as its input, so without it the block count (and each round's scheduling
work) grew by the edges' block count every round (20k benchmark: 2.6 s for the first round,
18 s for the ninth). Verified pairs are few next to the images (1,243 for 21,752 images
in the 20k benchmark), so up to ``LOCAL_MAX_EDGES`` of them are joined in one Ray task
instead (``local_components``, numpy min-label propagation with pointer jumping).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mindvl.data_engine.dedup.compare import PairVerifier, star_members
from mindvl.data_engine.dedup.components import component_labels
from mindvl.data_engine.dedup.ray_tables import total
from mindvl.data_engine.dedup.rule import NearRule

STATE = pa.schema(
    [
        ("node", pa.string()),
        ("dst", pa.string()),  # edge row: neighbour; message row: null
        ("label", pa.string()),  # message row: a label heard of; edge row: null
        ("is_self", pa.bool_()),  # the node's own current label
        ("changed", pa.bool_()),
    ]
)
MAX_ROUNDS = 1000
LABELS = pa.schema([("node", pa.string()), ("label", pa.string())])
WITH_SIG = pa.schema([("node", pa.string()), ("label", pa.string()), ("sig", pa.binary())])
# one task joins up to this many verified pairs; each carries both signatures (2.4 KB
# each, 4.7 KB with a content box), so ~0.5-0.9 GB at most there
LOCAL_MAX_EDGES = 100_000


def edge_rows(table: pa.Table) -> pa.Table:
    """Verified pairs (a, b) as directed edge rows a->b and b->a."""
    table = table.filter(table.column("verified"))
    a, b = table.column("a"), table.column("b")
    n = table.num_rows
    nulls = pa.nulls(2 * n, pa.string())
    return pa.table(
        {
            "node": pa.concat_arrays([a.combine_chunks(), b.combine_chunks()]),
            "dst": pa.concat_arrays([b.combine_chunks(), a.combine_chunks()]),
            "label": nulls,
            "is_self": pa.array([False] * (2 * n)),
            "changed": pa.array([False] * (2 * n)),
        },
        schema=STATE,
    )


def init_messages(table: pa.Table) -> pa.Table:
    """Every node starts with its own label (one self row per edge endpoint; the first
    round's group-by merges the repeats)."""
    table = table.filter(table.column("verified"))
    nodes = pa.concat_arrays(
        [table.column("a").combine_chunks(), table.column("b").combine_chunks()]
    )
    n = len(nodes)
    return pa.table(
        {"node": nodes, "dst": pa.nulls(n, pa.string()), "label": nodes,
         "is_self": pa.array([True] * n), "changed": pa.array([False] * n)},
        schema=STATE,
    )  # fmt: skip


def propagate(table: pa.Table) -> pa.Table:
    """One node's rows: keep the smallest label heard, tell every neighbour about it."""
    rows = table.to_pylist()
    node = rows[0]["node"]
    heard = [r["label"] for r in rows if r["label"] is not None]
    own = min((r["label"] for r in rows if r["is_self"]), default=node)
    new = min(heard, default=own)
    out = {"node": [node], "dst": [None], "label": [new], "is_self": [True],
           "changed": [new < own]}  # fmt: skip
    for dst in sorted({r["dst"] for r in rows if r["dst"] is not None}):
        out["node"].append(dst)
        out["dst"].append(None)
        out["label"].append(new)
        out["is_self"].append(False)
        out["changed"].append(False)
    return pa.table(out, schema=STATE)


def final_label(table: pa.Table) -> pa.Table:
    """Self rows only, as (node, label)."""
    mask = table.column("is_self")
    t = table.filter(mask)
    return pa.table({"node": t.column("node"), "label": t.column("label")})


def changed_count(table: pa.Table) -> pa.Table:
    return pa.table(
        {"changed": [int(pc.sum(table.column("changed").cast(pa.int64())).as_py() or 0)]}
    )


def local_components(table: pa.Table, rule: NearRule) -> pa.Table:
    """All verified pairs in one batch -> (node, label) with label = the smallest label in
    the node's component (labels sort as survivor labels, so that is the survivor), each
    component then split into stars around survivors (``verify.star_members``) when
    ``stars`` (the recipe verifies; without verification there is nothing to split by)."""
    table = table.filter(table.column("verified"))
    a = table.column("a").to_numpy(zero_copy_only=False).astype(str)
    b = table.column("b").to_numpy(zero_copy_only=False).astype(str)
    nodes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)  # sorted labels
    labels = nodes[component_labels(nodes.size, inv[: a.size], inv[a.size :])]
    if not rule.verify:
        return pa.table({"node": nodes.tolist(), "label": labels.tolist()}, schema=LABELS)
    sig_of = dict(zip(a.tolist(), table.column("sig_a").to_pylist(), strict=True))
    sig_of.update(zip(b.tolist(), table.column("sig_b").to_pylist(), strict=True))
    groups: dict[str, list[str]] = {}
    for node, label in zip(nodes.tolist(), labels.tolist(), strict=True):
        groups.setdefault(label, []).append(node)  # nodes are sorted: the label comes first
    return star_rows(groups, sig_of, rule)


def star_rows(groups: dict[str, list[str]], sig_of: dict[str, bytes], rule: NearRule) -> pa.Table:
    verifier = PairVerifier(rule)
    out: dict[str, list[str]] = {"node": [], "label": []}
    for members in groups.values():
        for star in star_members(members, sig_of, verifier):
            out["node"] += star
            out["label"] += [star[0]] * len(star)
    return pa.table(out, schema=LABELS)


def node_sig_rows(table: pa.Table) -> pa.Table:
    """Each endpoint of a verified pair with its signature (label null)."""
    table = table.filter(table.column("verified"))
    nodes = pa.concat_arrays([table.column(c).combine_chunks() for c in ("a", "b")])
    sigs = pa.concat_arrays([table.column(c).combine_chunks() for c in ("sig_a", "sig_b")])
    return pa.table({"node": nodes, "label": pa.nulls(len(nodes), pa.string()), "sig": sigs},
                    schema=WITH_SIG)  # fmt: skip


def label_rows(table: pa.Table) -> pa.Table:
    return pa.table({"node": table.column("node"), "label": table.column("label"),
                     "sig": pa.nulls(table.num_rows, pa.binary())}, schema=WITH_SIG)  # fmt: skip


def attach_sig(table: pa.Table) -> pa.Table:
    """One node's rows (its label row and its signature rows) -> one (node, label, sig)."""
    labels = [x for x in table.column("label").to_pylist() if x is not None]
    sigs = [x for x in table.column("sig").to_pylist() if x is not None]
    return pa.table({"node": [table.column("node")[0].as_py()], "label": [min(labels)],
                     "sig": [sigs[0]]}, schema=WITH_SIG)  # fmt: skip


def star_group(table: pa.Table, rule: NearRule) -> pa.Table:
    """One component's (node, label, sig) rows -> its stars (``verify.star_members``)."""
    label = table.column("label")[0].as_py()
    nodes = table.column("node").to_pylist()
    sig_of = dict(zip(nodes, table.column("sig").to_pylist(), strict=True))
    return star_rows({label: nodes}, sig_of, rule)


def components(pairs, rule: NearRule, num_partitions: int | None = None, edges: int | None = None):
    """(node, label) for every node of a near-duplicate group: components of the verified
    pairs, split into stars whose members verify against their label (the survivor) when
    ``stars`` (the recipe verifies, as ``core.plan_dedup``).

    ``pairs``: a materialised Dataset with columns a, b, verified (unverified pairs are not
    edges). ``edges``: the number of verified pairs, when known: up to LOCAL_MAX_EDGES they
    are joined in one task.
    """
    if edges is not None and edges <= LOCAL_MAX_EDGES:
        return pairs.repartition(1).map_batches(
            local_components, batch_format="pyarrow", batch_size=None, fn_args=(rule,)
        )
    blocks = num_partitions or 1
    edges_ds = pairs.map_batches(edge_rows, batch_format="pyarrow").repartition(blocks)
    edges_ds = edges_ds.materialize()
    messages = pairs.map_batches(init_messages, batch_format="pyarrow")
    first = True
    for _ in range(MAX_ROUNDS):
        state = edges_ds.union(messages)
        messages = (
            state.groupby("node", num_partitions=num_partitions)
            .map_groups(propagate, batch_format="pyarrow")
            .repartition(blocks)
            .materialize()
        )
        changed = total(messages, changed_count)["changed"]
        if not first and changed == 0:
            break
        first = False
    else:
        raise RuntimeError("near-duplicate components did not converge")
    labelled = messages.map_batches(final_label, batch_format="pyarrow")
    if not rule.verify:
        return labelled
    with_sig = (
        labelled.map_batches(label_rows, batch_format="pyarrow")
        .union(pairs.map_batches(node_sig_rows, batch_format="pyarrow"))
        .groupby("node", num_partitions=num_partitions)
        .map_groups(attach_sig, batch_format="pyarrow")
    )
    return with_sig.groupby("label", num_partitions=num_partitions).map_groups(
        star_group, batch_format="pyarrow", fn_args=(rule,)
    )

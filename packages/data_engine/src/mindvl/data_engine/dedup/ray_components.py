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
18 s for the ninth). Verified pairs are few next to the images (a build's duplicates), so
up to ``LOCAL_MAX_EDGES`` of them are joined in one Ray task instead (``local_components``,
numpy min-label propagation with pointer jumping): one task, no rounds.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mindvl.data_engine.dedup.components import component_labels
from mindvl.data_engine.dedup.ray_tables import total

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
LOCAL_MAX_EDGES = 2_000_000  # ~100 MB of label strings in the one task that joins them


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


def local_components(table: pa.Table) -> pa.Table:
    """All verified pairs in one batch -> (node, label) with label = the smallest label in
    the node's component (labels sort as survivor labels, so that is the survivor)."""
    table = table.filter(table.column("verified"))
    a = table.column("a").to_numpy(zero_copy_only=False).astype(str)
    b = table.column("b").to_numpy(zero_copy_only=False).astype(str)
    nodes, inv = np.unique(np.concatenate([a, b]), return_inverse=True)  # sorted labels
    labels = component_labels(nodes.size, inv[: a.size], inv[a.size :])
    return pa.table({"node": pa.array(nodes.tolist(), pa.string()),
                     "label": pa.array(nodes[labels].tolist(), pa.string())})  # fmt: skip


def components(pairs, num_partitions: int | None = None, edges: int | None = None):
    """(node, label) for every node of a verified pair; label = smallest label in component.

    ``pairs``: a materialised Dataset with columns a, b, verified (unverified pairs are not
    edges). ``edges``: the number of verified pairs, when known: up to LOCAL_MAX_EDGES they
    are joined in one task.
    """
    if edges is not None and edges <= LOCAL_MAX_EDGES:
        return pairs.repartition(1).map_batches(
            local_components, batch_format="pyarrow", batch_size=None
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
    return messages.map_batches(final_label, batch_format="pyarrow")

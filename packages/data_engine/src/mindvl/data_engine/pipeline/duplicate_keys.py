"""One record per sample key: later occurrences of a key are counted drops, never a crash.

A key is ``make_key(source, raw_id)``, so two sources never share one; within a source a
raw id can repeat (a LLaVA file listing an id twice, a tar shard copied under a second
name, a Parquet column with repeated ids). The rule: the occurrence read first is the
record — the smallest ``read_order``, which is (unit index in the sorted plan, position
in the unit), so sources in recipe order, units in sorted order, rows in file order —
and keeps whatever fate the build gives it; every later occurrence is dropped at
(``read``, the source's format, ``duplicate_key``) with its image bytes released.

The rule runs where all rows of a key meet: before dedup on the materialised rows (so
dedup never sees a key twice) when dedup runs, and in any case when a staging bucket is
finalised (every row of a key lands in the same bucket). Both calls are idempotent.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REASON = "duplicate_key"
ORDER_BITS = 32  # read_order = unit index << ORDER_BITS | position in the unit


def read_order(unit_index: int, position: int) -> int:
    return (unit_index << ORDER_BITS) | position


def later_occurrences(keys: pa.Array, orders: pa.Array) -> np.ndarray:
    """Mask (in input order) of rows whose key occurs with a smaller read order."""
    n = len(keys)
    if n < 2:
        return np.zeros(n, dtype=bool)
    table = pa.table({"k": keys, "o": orders})
    idx = pc.sort_indices(table, [("k", "ascending"), ("o", "ascending")]).to_numpy()
    k = table.column("k").take(idx).to_numpy(zero_copy_only=False)
    o = table.column("o").take(idx).to_numpy(zero_copy_only=False)
    repeat = np.concatenate([[False], k[1:] == k[:-1]])
    if np.any(repeat & np.concatenate([[False], o[1:] == o[:-1]])):
        raise RuntimeError("a staged row appears twice (same key and read order)")
    mask = np.zeros(n, dtype=bool)
    mask[idx] = repeat
    return mask


def mark(table: pa.Table, mask: np.ndarray, formats: dict[str, str]) -> pa.Table:
    """``table`` with the masked rows dropped as duplicate keys (the others unchanged)."""
    if not mask.any():
        return table
    m = pa.array(mask)
    ops = pa.array([formats.get(s, "read") for s in table.column("source").to_pylist()])
    values = {
        "drop_stage": pa.scalar("read"),
        "drop_op": ops,
        "drop_reason": pa.scalar(REASON),
        "images": pa.scalar([], table.schema.field("images").type),
    }
    for name, value in values.items():
        i = table.schema.get_field_index(name)
        col = pc.if_else(m, value, table.column(name)).cast(table.schema.field(name).type)
        table = table.set_column(i, name, col)
    return table


def mark_listed(batch: pa.Table, losers: list[str], formats: dict[str, str]) -> pa.Table:
    """Ray map: drop the rows whose ``key\\0read_order`` is in ``losers``."""
    from mindvl.data_engine.pipeline.rows import conform

    batch = conform(batch)
    ids = pc.binary_join_element_wise(
        batch.column("key"), batch.column("read_order").cast(pa.string()), "\0"
    )
    hit = pc.is_in(ids, value_set=pa.array(losers, pa.string())).to_numpy(zero_copy_only=False)
    return mark(batch, hit, formats)


def losers_before_dedup(ds, dropped_parts: str) -> list[str]:
    """``key\\0read_order`` of the later occurrences among the rows of the materialised
    ``ds``, judged together with the rows already staged as dropped (every input row is in
    one of the two). The driver holds every key and read order once while it compares
    them: a few hundred bytes a row (Arrow plus the sorted keys as Python strings)."""
    from pathlib import Path

    import pyarrow.parquet as pq
    import ray

    cols = ["key", "read_order"]
    live = [t for t in ray.get(ds.select_columns(cols).to_arrow_refs()) if t.num_rows]
    staged = [
        pq.read_table(p, columns=cols) for p in sorted(Path(dropped_parts).rglob("*.parquet"))
    ]
    n_live = sum(t.num_rows for t in live)
    tables = [t.select(cols).cast(pa.schema([("key", pa.string()), ("read_order", pa.int64())]))
              for t in live + staged]  # fmt: skip
    if not tables:
        return []
    both = pa.concat_tables(tables)
    mask = later_occurrences(both.column("key"), both.column("read_order"))[:n_live]
    if not mask.any():
        return []
    hit = both.slice(0, n_live).filter(pa.array(mask))
    return [
        f"{k}\0{o}"
        for k, o in zip(
            hit.column("key").to_pylist(), hit.column("read_order").to_pylist(), strict=True
        )
    ]

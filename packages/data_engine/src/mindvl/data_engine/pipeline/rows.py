"""Candidates <-> Arrow tables with one fixed schema.

Every Ray block and staging Parquet file of a build uses :data:`SCHEMA`, so blocks whose
rows happen to be all-empty (no images, no captions) still concatenate with the others.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from mindvl.data_engine.record import ROW_COLUMNS, Candidate

_TYPES = {
    "key": pa.string(),
    "source": pa.string(),
    "category": pa.string(),
    "raw_id": pa.string(),
    "images": pa.list_(pa.binary()),
    "image_formats": pa.list_(pa.string()),
    "widths": pa.list_(pa.int64()),
    "heights": pa.list_(pa.int64()),
    "caption": pa.string(),
    "conversation": pa.string(),
    "phashes": pa.list_(pa.string()),
    "pixel_hashes": pa.list_(pa.string()),
    "signatures": pa.list_(pa.string()),
    "information": pa.list_(pa.float64()),
    "blur": pa.list_(pa.float64()),
    "quality": pa.float64(),
    "meta": pa.string(),
    "drop_stage": pa.string(),
    "drop_op": pa.string(),
    "drop_reason": pa.string(),
    "read_order": pa.int64(),
}
# Fields of Candidate that the shared row layout does not carry yet travel here too.
EXTRA = {"signatures": pa.list_(pa.string()), "blur": pa.list_(pa.float64())}
SCHEMA = pa.schema(
    [(c, _TYPES[c]) for c in ROW_COLUMNS]
    + [(c, t) for c, t in EXTRA.items() if c not in ROW_COLUMNS]
)


def to_table(cands: Iterable[Candidate]) -> pa.Table:
    cols: dict[str, list] = {name: [] for name in SCHEMA.names}
    for c in cands:
        row = c.to_row()
        for name in SCHEMA.names:
            cols[name].append(row[name])
    return pa.Table.from_pydict(cols, schema=SCHEMA)


def from_table(table: pa.Table) -> list[Candidate]:
    return [Candidate.from_row(row) for row in table.to_pylist()]


def conform(table: pa.Table) -> pa.Table:
    """Cast a table from another stage (columns in any order, extra columns kept) to SCHEMA."""
    missing = [n for n in SCHEMA.names if n not in table.column_names]
    for n in missing:
        table = table.append_column(n, pa.nulls(len(table), SCHEMA.field(n).type))
    return table.select(SCHEMA.names).cast(SCHEMA)

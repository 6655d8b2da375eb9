"""Samples the mixture did not pick, listed in ``rejects.parquet`` next to the earlier drops.

The build's staging step writes ``rejects.parquet`` (filter, dedup and caption drops); the
mix stage adds one row per kept sample that no pick used, as (stage ``mix``, op
``mixture``, reason ``not_selected``), so every sample the funnel counts as gone has a row
that says why. Rewriting replaces earlier ``mix`` rows, so a resumed or repeated mix stage
gives the same file.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mindvl.common.errors import UserError
from mindvl.common.manifest import REJECTS_COLUMNS
from mindvl.data_engine.mix.manifest_build import MIX_OP, MIX_STAGE, NOT_SELECTED, unpicked
from mindvl.data_engine.mix.selection import Item, Pick


def save_rejects(table: pa.Table, path: Path) -> None:
    """The one way ``rejects.parquet`` is written: contract columns, sorted by key, atomic."""
    table = table.select(list(REJECTS_COLUMNS)).sort_by("key")
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)


def record_not_selected(path: Path, items: list[Item], ordered: list[Pick]) -> int:
    """Add the unpicked kept samples to ``path``; returns how many rows that is."""
    missing = sorted((i.key, i.source) for i in unpicked(items, ordered))
    if path.is_file():
        old = pq.read_table(path)
        if tuple(old.column_names) != REJECTS_COLUMNS:
            raise UserError(f"{path}: unexpected columns {old.column_names}, not a rejects file")
        old = old.filter(pc.not_equal(old.column("stage"), MIX_STAGE))
    elif not missing:
        return 0
    else:
        old = None
    n = len(missing)
    rows = pa.table(
        {
            "key": pa.array([k for k, _ in missing], pa.string()),
            "source": pa.array([s for _, s in missing], pa.string()),
            "stage": pa.array([MIX_STAGE] * n, pa.string()),
            "op": pa.array([MIX_OP] * n, pa.string()),
            "reason": pa.array([NOT_SELECTED] * n, pa.string()),
            "dup_group": pa.nulls(n, pa.string()),
            "dup_survivor": pa.nulls(n, pa.string()),
        }
    )
    save_rejects(rows if old is None else pa.concat_tables([old.cast(rows.schema), rows]), path)
    return n

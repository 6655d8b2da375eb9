"""Samples added and removed between two builds, from their ``index.parquet`` files.

Uses Arrow set membership (``is_in``: a hash set of the other side's keys) and group-bys,
no Python loops over rows; see ``bench/manifest_diff.py`` for 1M-sample indexes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mindvl.common.errors import UserError


def _read(path: Path):
    import pyarrow.parquet as pq

    if not path.is_file():
        raise UserError(f"index not found: {path}")
    # ParquetFile, not read_table: read_table goes through pyarrow.dataset, whose import
    # pulls in pandas and costs more than the diff itself.
    return pq.ParquetFile(path).read(columns=["key", "source"])


def index_changes(a: Path, b: Path, list_keys: bool) -> dict[str, Any]:
    """Per source counts of keys only in A (removed) and only in B (added)."""
    import pyarrow.compute as pc

    ta, tb = _read(a), _read(b)
    ka, kb = ta.column("key").combine_chunks(), tb.column("key").combine_chunks()
    removed = ta.filter(pc.invert(pc.is_in(ka, value_set=kb)))
    added = tb.filter(pc.invert(pc.is_in(kb, value_set=ka)))

    def counts(t) -> dict[str, int]:
        vc = pc.value_counts(t.column("source").combine_chunks())
        return dict(
            zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True)
        )

    ra, ad = counts(removed), counts(added)
    per_source = [
        {"source": s, "added": ad.get(s, 0), "removed": ra.get(s, 0)}
        for s in sorted(set(ra) | set(ad))
    ]
    out: dict[str, Any] = {
        "samples_a": ta.num_rows,
        "samples_b": tb.num_rows,
        "added": added.num_rows,
        "removed": removed.num_rows,
        "per_source": per_source,
    }
    if list_keys:
        out["added_keys"] = sorted(added.column("key").to_pylist())
        out["removed_keys"] = sorted(removed.column("key").to_pylist())
    return out

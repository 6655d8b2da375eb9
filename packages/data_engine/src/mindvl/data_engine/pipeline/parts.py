"""Staging parts: how a streaming build writes rows so the final files are deterministic.

Workers write each batch as small Parquet parts into ``bucket-NNNNN/`` folders (bucket =
keyed hash of the sample key), each part named by a digest of its rows' keys and read
orders, so a retried task overwrites rather than duplicates. :func:`finalize_bucket` then
applies the duplicate-key rule to the bucket's kept and dropped rows together (all rows of
a key share a bucket) and writes one kept and one dropped file, each sorted by key. Same inputs -> same file names and bytes, whatever the task order.
Buckets bound the memory of finalising: one bucket at a time per task.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mindvl.data_engine.pipeline.duplicate_keys import later_occurrences, mark

PART_ROWS = 1024
BUCKET_BYTES = 256 << 20  # aim for final staging files of about this many input bytes


def bucket_of(key: str, buckets: int) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % buckets


def choose_buckets(total_input_bytes: int) -> int:
    return max(1, min(1024, -(-total_input_bytes // BUCKET_BYTES)))


def _compression(table: pa.Table) -> dict[str, str]:
    """Encoded images do not compress; spending zstd on them only costs CPU."""
    return {c: "none" if c == "images" else "zstd" for c in table.column_names}


def _write(table: pa.Table, path: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    pq.write_table(table, tmp, compression=_compression(table))
    os.replace(tmp, path)


def write_part(table: pa.Table, folder: str, buckets: int) -> None:
    if not len(table):
        return
    keys = table.column("key").to_pylist()
    ids = pa.array([bucket_of(k, buckets) for k in keys], pa.int64())
    for b in sorted(set(ids.to_pylist())):
        part = table.filter(pc.equal(ids, b))
        # named by the rows it holds (key and read order: a repeated key is another row)
        keys, orders = part.column("key").to_pylist(), part.column("read_order").to_pylist()
        rows = sorted(f"{k}\0{o}" for k, o in zip(keys, orders, strict=True))
        digest = hashlib.sha256("\n".join(rows).encode())
        d = Path(folder) / f"bucket-{b:05d}"
        d.mkdir(parents=True, exist_ok=True)
        _write(part, str(d / f"part-{digest.hexdigest()[:20]}.parquet"))


def _load(bucket_dir: Path) -> pa.Table | None:
    files = sorted(bucket_dir.glob("part-*.parquet")) if bucket_dir.is_dir() else []
    return pa.concat_tables([pq.read_table(f) for f in files]) if files else None


def _save_sorted(table: pa.Table, out_path: Path) -> int:
    order = [("key", "ascending"), ("read_order", "ascending")]
    table = table.take(pc.sort_indices(table, order))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out_path, compression=_compression(table), row_group_size=PART_ROWS)
    return len(table)


def finalize_bucket(
    kept_dir: str, dropped_dir: str, kept_out: str, dropped_out: str, formats: dict[str, str]
) -> tuple[int, int]:
    """Merge one bucket's kept and dropped parts into two files sorted by key, after the
    duplicate-key rule (later occurrences of a key move to dropped); (kept, dropped) rows."""
    kept, dropped = _load(Path(kept_dir)), _load(Path(dropped_dir))
    tables = [t for t in (kept, dropped) if t is not None]
    both = pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]
    later = later_occurrences(both.column("key"), both.column("read_order"))
    both = mark(both, later, formats)
    gone = both.column("drop_reason").is_valid()
    counts = []
    for rows, out in ((both.filter(pc.invert(gone)), kept_out), (both.filter(gone), dropped_out)):
        counts.append(_save_sorted(rows, Path(out)) if len(rows) else 0)
    for d in (kept_dir, dropped_dir):
        shutil.rmtree(d, ignore_errors=True)
    return counts[0], counts[1]

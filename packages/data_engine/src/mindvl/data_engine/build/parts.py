"""Staging parts: how a streaming build writes rows so the final files are deterministic.

Workers write each batch as small Parquet parts into ``bucket-NNNNN/`` folders (bucket =
keyed hash of the sample key), each part named by a digest of its keys, so a retried task
overwrites rather than duplicates. :func:`finalize_bucket` then turns one bucket into one
file sorted by key. Same inputs -> same file names and bytes, whatever the task order.
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
        digest = hashlib.sha256("\n".join(sorted(part.column("key").to_pylist())).encode())
        d = Path(folder) / f"bucket-{b:05d}"
        d.mkdir(parents=True, exist_ok=True)
        _write(part, str(d / f"part-{digest.hexdigest()[:20]}.parquet"))


def finalize_bucket(bucket_dir: str, out_path: str) -> int:
    """Merge one bucket's parts into ``out_path`` sorted by key; returns the row count."""
    files = sorted(Path(bucket_dir).glob("part-*.parquet"))
    table = pa.concat_tables([pq.read_table(f) for f in files])
    table = table.take(pc.sort_indices(table, [("key", "ascending")]))
    keys = table.column("key")
    if len(keys) != len(pc.unique(keys)):
        raise RuntimeError(f"duplicate sample keys in {bucket_dir}: two records share an id")
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out_path, compression=_compression(table), row_group_size=PART_ROWS)
    shutil.rmtree(bucket_dir)
    return len(table)

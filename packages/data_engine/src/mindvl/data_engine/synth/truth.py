"""``truth.parquet``: one row per record written, saying what was planted where."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mindvl.data_engine.synth.records import Record

TRUTH_COLUMNS = (
    "id",
    "category",
    "format",
    "path",
    "image_format",
    "width",
    "height",
    "faults",
    "dup_group",
    "dup_kind",
    "low_info",
    "question",
    "answer",
    "caption",
    "sha256",
)


def truth_row(record: Record, fmt: str, path: str) -> dict[str, object]:
    return {
        "id": record.id,
        "category": record.category,
        "format": fmt,
        "path": path,
        "image_format": record.image_format,
        "width": record.width,
        "height": record.height,
        "faults": list(record.faults),
        "dup_group": record.dup_group,
        "dup_kind": record.dup_kind,
        "low_info": record.low_info,
        "question": record.question,
        "answer": record.answer,
        "caption": record.truth_caption,
        "sha256": hashlib.sha256(record.image).hexdigest() if record.image is not None else "",
    }


def write_truth(path: Path, rows: list[dict[str, object]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("id", pa.string()),
            ("category", pa.string()),
            ("format", pa.string()),
            ("path", pa.string()),
            ("image_format", pa.string()),
            ("width", pa.int64()),
            ("height", pa.int64()),
            ("faults", pa.list_(pa.string())),
            ("dup_group", pa.int64()),
            ("dup_kind", pa.string()),
            ("low_info", pa.bool_()),
            ("question", pa.string()),
            ("answer", pa.string()),
            ("caption", pa.string()),
            ("sha256", pa.string()),
        ]
    )
    ordered = sorted(rows, key=lambda r: str(r["id"]))
    table = pa.table({c: [r[c] for r in ordered] for c in TRUTH_COLUMNS}, schema=schema)
    pq.write_table(table, path, compression="zstd", write_statistics=False)

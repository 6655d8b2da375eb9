"""The four raw formats. Each writer takes one category's records and returns, per id,
the relative path of the file that holds the record (for ``truth.parquet``).

Layout under ``DIR/{category}/``:

* llava: ``data.jsonl`` (``id``, ``image`` = ``images/<id>.<ext>``, ``conversations``,
  ``caption``) and ``images/``;
* webdataset: ``shard-00000.tar`` ... (<= 1000 samples each): ``<id>.<ext>``, ``<id>.txt``
  (caption), ``<id>.json`` (``{"conversations": [...]}``);
* parquet: ``part-00000.parquet`` ... (<= 1000 rows): ``id``, ``image`` (encoded bytes),
  ``image_format``, ``caption``, ``conversations`` (JSON text of the list);
* folder: ``<id>.<ext>`` with sidecars ``<id>.txt`` and ``<id>.json``.

All output is deterministic: records in id order, JSON with sorted keys, tar members in
sorted order with fixed metadata (mtime 0, uid/gid 0, empty names, mode 0644, ustar),
parquet written with fixed settings (zstd, no statistics)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from mindvl.data_engine.synth.records import Record

SAMPLES_PER_SHARD = 1000
ROWS_PER_PART = 1000


def conversations(record: Record) -> list[dict[str, str]]:
    turns = [
        {"from": "human", "value": f"<image>\n{record.question}"},
        {"from": "gpt", "value": record.answer},
    ]
    for question, answer in record.more_qa:
        turns += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return turns


def json_bytes(obj: object) -> bytes:
    """UTF-8 JSON with sorted keys; str values holding surrogate escapes come out as the raw
    (possibly invalid UTF-8) bytes they stand for."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogateescape")


def raw_caption(record: Record) -> str:
    """The caption bytes as a str that :func:`json_bytes` turns back into the same bytes."""
    return record.caption.decode("utf-8", "surrogateescape")


def image_name(record: Record) -> str:
    return f"{record.id}.{record.image_format}"


def write_llava(root: Path, category: str, records: list[Record]) -> dict[str, str]:
    base = root / category
    (base / "images").mkdir(parents=True, exist_ok=True)
    paths, lines = {}, []
    for r in sorted(records, key=lambda r: r.id):
        rel = f"images/{image_name(r)}"
        if r.image is not None:
            (base / rel).write_bytes(r.image)
        paths[r.id] = f"{category}/{rel}"
        obj = {
            "id": r.id,
            "image": rel,
            "conversations": conversations(r),
            "caption": raw_caption(r),
        }
        lines.append(json_bytes(obj) + b"\n")
    (base / "data.jsonl").write_bytes(b"".join(lines))
    return paths


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def write_webdataset(root: Path, category: str, records: list[Record]) -> dict[str, str]:
    base = root / category
    base.mkdir(parents=True, exist_ok=True)
    ordered = sorted(records, key=lambda r: r.id)
    paths = {}
    for shard, start in enumerate(range(0, len(ordered), SAMPLES_PER_SHARD)):
        name = f"shard-{shard:05d}.tar"
        members: dict[str, bytes] = {}
        for r in ordered[start : start + SAMPLES_PER_SHARD]:
            if r.image is None:
                raise ValueError(f"{r.id}: webdataset cannot hold a missing image")
            members[image_name(r)] = r.image
            members[f"{r.id}.txt"] = r.caption
            members[f"{r.id}.json"] = json_bytes({"conversations": conversations(r)})
            paths[r.id] = f"{category}/{name}"
        with tarfile.open(base / name, "w", format=tarfile.USTAR_FORMAT) as tar:
            for member in sorted(members):
                _add_member(tar, member, members[member])
    return paths


def write_parquet(root: Path, category: str, records: list[Record]) -> dict[str, str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("id", pa.string()),
            ("image", pa.binary()),
            ("image_format", pa.string()),
            ("caption", pa.string()),
            ("conversations", pa.string()),
        ]
    )
    base = root / category
    base.mkdir(parents=True, exist_ok=True)
    ordered = sorted(records, key=lambda r: r.id)
    paths = {}
    for part, start in enumerate(range(0, len(ordered), ROWS_PER_PART)):
        name = f"part-{part:05d}.parquet"
        chunk = ordered[start : start + ROWS_PER_PART]
        if any(r.image is None for r in chunk):
            raise ValueError("parquet cannot hold a missing image")
        columns = {
            "id": [r.id for r in chunk],
            "image": [r.image for r in chunk],
            "image_format": [r.image_format for r in chunk],
            "caption": [
                r.caption.decode("utf-8") for r in chunk
            ],  # parquet strings are valid UTF-8
            "conversations": [
                json.dumps(conversations(r), sort_keys=True, ensure_ascii=False) for r in chunk
            ],
        }
        table = pa.table(columns, schema=schema)
        pq.write_table(
            table, base / name, compression="zstd", row_group_size=256, write_statistics=False
        )
        paths.update((r.id, f"{category}/{name}") for r in chunk)
    return paths


def write_folder(root: Path, category: str, records: list[Record]) -> dict[str, str]:
    base = root / category
    base.mkdir(parents=True, exist_ok=True)
    paths = {}
    for r in sorted(records, key=lambda r: r.id):
        if r.image is not None:
            (base / image_name(r)).write_bytes(r.image)
        (base / f"{r.id}.txt").write_bytes(r.caption)
        (base / f"{r.id}.json").write_bytes(json_bytes({"conversations": conversations(r)}))
        paths[r.id] = f"{category}/{image_name(r)}"
    return paths


WRITERS = {
    "llava": write_llava,
    "webdataset": write_webdataset,
    "parquet": write_parquet,
    "folder": write_folder,
}

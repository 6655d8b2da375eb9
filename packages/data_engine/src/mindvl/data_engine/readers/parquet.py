"""Parquet files with image bytes inline: one unit per row group, read in small batches.

Columns (renamable through ``options``): ``id``, ``image`` (binary, a list of binaries,
or Hugging Face ``{"bytes": ...}`` structs), ``caption``, ``conversations`` (a JSON string
or a list of turns). Rows without an id get ``<file>#rg<i>:<row>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from mindvl.data_engine.readers.base import (
    ReadUnit,
    candidate,
    choose_text,
    normalise_conversation,
    read_drop,
)
from mindvl.data_engine.record import Candidate

NAME = "parquet"
SUFFIXES = (".parquet",)
BATCH_ROWS = 64


def split(unit: ReadUnit, fs: Any) -> list[ReadUnit]:
    import pyarrow.parquet as pq

    try:
        with fs.open(unit.path, "rb") as f:
            n = pq.ParquetFile(f).num_row_groups
    except Exception:
        return [unit]  # unreadable: the reader turns it into a counted drop
    return [replace(unit, start=i, end=i + 1) for i in range(max(n, 1))]


def _column(unit: ReadUnit, name: str) -> str:
    return str(unit.options.get(f"{name}_column", name))


def read(unit: ReadUnit) -> Iterator[Candidate]:
    import pyarrow.parquet as pq

    rel = unit.rel()
    cols = {k: _column(unit, k) for k in ("id", "image", "caption", "conversations")}
    try:
        f = unit.fs().open(unit.path, "rb")
        pf = pq.ParquetFile(f)
        present = [c for c in cols.values() if c in pf.schema_arrow.names]
        batches = pf.iter_batches(
            batch_size=BATCH_ROWS, row_groups=[max(unit.start, 0)], columns=present
        )
    except Exception:
        yield read_drop(unit, f"{rel}#rg{unit.start}", NAME, "unreadable_file")
        return
    row = 0
    with f:
        try:
            for batch in batches:
                for rec in batch.to_pylist():
                    yield _row(unit, rec, cols, f"{rel}#rg{unit.start}:{row}")
                    row += 1
        except Exception:
            yield read_drop(unit, f"{rel}#rg{unit.start}:{row}", NAME, "unreadable_file")


def _image_bytes(value: Any) -> list[bytes]:
    if value is None:
        return []
    if isinstance(value, bytes | bytearray):
        return [bytes(value)]
    if isinstance(value, dict):
        return _image_bytes(value.get("bytes"))
    if isinstance(value, list):
        return [b for v in value for b in _image_bytes(v)]
    raise ValueError("bad_image_column")


def _row(unit: ReadUnit, rec: dict[str, Any], cols: dict[str, str], where: str) -> Candidate:
    rid = rec.get(cols["id"])
    c = candidate(unit, str(rid) if rid not in (None, "") else where)
    try:
        c.images = _image_bytes(rec.get(cols["image"]))
    except ValueError:
        c.drop("read", NAME, "bad_image_column")
        return c
    if not c.images and cols["image"] in rec:
        c.drop("read", NAME, "missing_image")
        return c
    conversation = None
    turns = rec.get(cols["conversations"])
    if turns is not None:
        try:
            conversation = normalise_conversation(
                json.loads(turns) if isinstance(turns, str) else turns
            )
        except (ValueError, json.JSONDecodeError):
            c.drop("read", NAME, "bad_conversation")
            return c
    prefer = str(unit.options.get("prefer", "conversation"))
    return choose_text(c, rec.get(cols["caption"]), conversation, prefer, NAME)

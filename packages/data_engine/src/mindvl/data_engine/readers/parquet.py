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

from pydantic import Field

from mindvl.data_engine.readers.base import (
    Reader,
    ReaderOptions,
    ReadUnit,
    candidate,
    choose_text,
    normalise_conversation,
    read_drop,
)
from mindvl.data_engine.record import Candidate, ImageRecord

NAME = "parquet"
BATCH_ROWS = 64


class ParquetOptions(ReaderOptions):
    id_column: str = Field(default="id", description="column of the sample id")
    image_column: str = Field(default="image", description="column of the image bytes")
    caption_column: str = Field(default="caption", description="column of the caption")
    conversations_column: str = Field(
        default="conversations", description="column of the conversation turns"
    )


class ParquetReader(Reader):
    name = NAME
    suffixes = (".parquet",)
    Options = ParquetOptions

    def split_file(self, unit: ReadUnit, fs: Any) -> list[ReadUnit]:
        """One unit per row group."""
        import pyarrow.parquet as pq

        try:
            with fs.open(unit.path, "rb") as f:
                n = pq.ParquetFile(f).num_row_groups
        except Exception:
            return [unit]  # unreadable: the reader turns it into a counted drop
        return [replace(unit, start=i, end=i + 1) for i in range(max(n, 1))]

    def read(self, unit: ReadUnit) -> Iterator[Candidate]:
        opts = self.options(unit)
        cols = {
            "id": opts.id_column,
            "image": opts.image_column,
            "caption": opts.caption_column,
            "conversations": opts.conversations_column,
        }
        return _read(unit, cols, opts.prefer)


def _read(unit: ReadUnit, cols: dict[str, str], prefer: str) -> Iterator[Candidate]:
    import pyarrow.parquet as pq

    rel = unit.rel()
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
                    yield _row(unit, rec, cols, prefer, f"{rel}#rg{unit.start}:{row}")
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


def _row(
    unit: ReadUnit, rec: dict[str, Any], cols: dict[str, str], prefer: str, where: str
) -> Candidate:
    rid = rec.get(cols["id"])
    c = candidate(unit, str(rid) if rid not in (None, "") else where)
    try:
        c.images = [ImageRecord(data) for data in _image_bytes(rec.get(cols["image"]))]
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
    return choose_text(c, rec.get(cols["caption"]), conversation, prefer, NAME)

"""LLaVA-style JSON / JSONL: one record per line (or a JSON list), images referenced by path.

Image paths are relative to the data file's directory (or to ``options.image_root`` under
the source root) and must stay inside the source root. Big JSONL files are split into byte
ranges (``options.chunk_bytes``, default 8 MiB); a line belongs to the range its first byte
falls in, so ranges never share or lose a line.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from pydantic import Field

from mindvl.data_engine.readers.base import (
    NonUtf8,
    Reader,
    ReaderOptions,
    ReadUnit,
    candidate,
    choose_text,
    decode_text,
    inside_real,
    normalise_conversation,
    read_drop,
)
from mindvl.data_engine.record import Candidate, ImageRecord

NAME = "llava"


class LlavaOptions(ReaderOptions):
    chunk_bytes: int = Field(default=8 << 20, gt=0, description="byte range of a JSONL unit")
    image_root: str | None = Field(
        default=None, description="image paths are relative to this folder under the source root"
    )


class LlavaReader(Reader):
    name = NAME
    suffixes = (".jsonl", ".json")
    Options = LlavaOptions

    def split_file(self, unit: ReadUnit, fs: Any) -> list[ReadUnit]:
        """Byte-range units of one file (a ``.json`` list is read whole)."""
        if unit.path.lower().endswith(".json"):
            return [unit]
        size = int(fs.size(unit.path) or 0)
        chunk = self.options(unit).chunk_bytes
        starts = range(0, max(size, 1), chunk)
        return [replace(unit, start=s, end=min(s + chunk, size)) for s in starts]

    def read(self, unit: ReadUnit) -> Iterator[Candidate]:
        fs, opts = unit.fs(), self.options(unit)
        if unit.path.lower().endswith(".json"):
            yield from _read_json_list(unit, fs, opts)
            return
        with fs.open(unit.path, "rb") as f:
            if unit.start > 0:
                f.seek(unit.start - 1)
                f.readline()  # finish the line that began in the previous range
            pos = f.tell()
            while unit.end < 0 or pos < unit.end:
                line = f.readline()
                if not line:
                    break
                if line.strip():
                    yield _record(unit, fs, opts, line, f"{unit.rel()}@{pos}")
                pos += len(line)


def _read_json_list(unit: ReadUnit, fs: Any, opts: LlavaOptions) -> Iterator[Candidate]:
    data = fs.cat_file(unit.path)
    try:
        items = json.loads(decode_text(data))
    except (NonUtf8, json.JSONDecodeError):
        yield read_drop(unit, unit.rel(), NAME, "bad_json")
        return
    if not isinstance(items, list):
        yield read_drop(unit, unit.rel(), NAME, "bad_json")
        return
    for i, item in enumerate(items):
        yield _parsed(unit, fs, opts, item, f"{unit.rel()}#{i}", utf8=True)


def _record(unit: ReadUnit, fs: Any, opts: LlavaOptions, line: bytes, where: str) -> Candidate:
    utf8 = True
    try:
        text = decode_text(line)
    except NonUtf8:
        utf8, text = False, line.decode("utf-8", errors="replace")
    try:
        rec = json.loads(text)
    except json.JSONDecodeError:
        return read_drop(unit, where, NAME, "bad_json")
    return _parsed(unit, fs, opts, rec, where, utf8)


def _parsed(
    unit: ReadUnit, fs: Any, opts: LlavaOptions, rec: Any, where: str, utf8: bool
) -> Candidate:
    if not isinstance(rec, dict):
        return read_drop(unit, where, NAME, "bad_json")
    raw_id = str(rec["id"]) if rec.get("id") not in (None, "") else where
    if not utf8:
        return read_drop(unit, raw_id, NAME, "non_utf8_text")
    c = candidate(unit, raw_id)
    refs = rec.get("image", rec.get("images"))
    refs = [] if refs is None else [refs] if isinstance(refs, str) else refs
    base = posixpath.dirname(unit.path)
    if opts.image_root is not None:
        base = posixpath.join(unit.root, opts.image_root)
    for ref in refs:
        if not isinstance(ref, str) or not ref:
            c.drop("read", NAME, "bad_image_ref")
            return c
        path = posixpath.normpath(ref if ref.startswith("/") else posixpath.join(base, ref))
        if not inside_real(unit, path):
            c.drop("read", NAME, "unsafe_path")
            return c
        try:
            c.images.append(ImageRecord(fs.cat_file(path)))
        except FileNotFoundError:
            c.drop("read", NAME, "missing_image")
            return c
        except (OSError, IsADirectoryError):
            c.drop("read", NAME, "unreadable_image")
            return c
    conversation = None
    if rec.get("conversations") is not None:
        try:
            conversation = normalise_conversation(rec["conversations"])
        except ValueError:
            c.drop("read", NAME, "bad_conversation")
            return c
    return choose_text(c, rec.get("caption"), conversation, opts.prefer, NAME)

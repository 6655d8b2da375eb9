"""Readers: raw corpora (llava, webdataset, parquet, folder) -> :class:`Candidate` s.

One :class:`~.base.Reader` class per format, registered below by the recipe's ``format``
name. The driver calls :func:`plan_source` per recipe source (validates its options, lists
files, splits them into sorted units, records size + mtime of every input file, fails
early on a missing path); workers call :func:`read_unit`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from mindvl.common.config import validate_data
from mindvl.common.errors import UserError
from mindvl.common.manifest import InputFile
from mindvl.common.recipe import SourceSpec
from mindvl.data_engine.readers.base import Reader, ReadUnit, read_drop, resolve_source
from mindvl.data_engine.readers.text_clean import normalise_candidate
from mindvl.data_engine.record import Candidate

READERS: dict[str, str] = {
    "llava": "mindvl.data_engine.readers.llava:LlavaReader",
    "webdataset": "mindvl.data_engine.readers.webdataset:WebDatasetReader",
    "parquet": "mindvl.data_engine.readers.parquet:ParquetReader",
    "folder": "mindvl.data_engine.readers.folder:FolderReader",
}


def reader_for(fmt: str) -> Reader:
    module, _, attr = READERS[fmt].partition(":")
    return getattr(importlib.import_module(module), attr)()


def _input(fs: Any, source: str, path: str, protocol: str) -> InputFile:
    info = fs.info(path)
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
    mtime_ns = None
    if isinstance(mtime, int | float):
        mtime_ns = int(mtime * 1e9)
    elif hasattr(mtime, "timestamp"):
        mtime_ns = int(mtime.timestamp() * 1e9)
    shown = path if protocol in ("file", "local") else f"{protocol}://{path}"
    return InputFile(source=source, path=shown, size=int(info.get("size") or 0), mtime_ns=mtime_ns)


def plan_source(spec: SourceSpec) -> tuple[list[ReadUnit], list[InputFile]]:
    """Sorted units and input files of one source; a user error if it has no input."""
    reader = reader_for(spec.format)
    options = validate_data(spec.options, reader.Options, f"source {spec.name}", "options")
    fs, protocol, root, matches = resolve_source(spec.path, spec.options, spec.name)
    base = ReadUnit(
        source=spec.name,
        category=spec.category,
        format=spec.format,
        protocol=protocol,
        root=root,
        path=root,
        options=options.model_dump(mode="json", exclude_unset=True),
    )
    units, files = reader.split(base, fs, matches)
    if not units:
        raise UserError(
            f"source {spec.name}: no {spec.format} input under {spec.path} "
            f"(looked for {', '.join(reader.suffixes or ('files',))})"
        )
    return units, [_input(fs, spec.name, f, protocol) for f in files]


def read_unit(unit: ReadUnit) -> Iterator[Candidate]:
    """Candidates of one unit, their text normalised (``text_clean.py``); an unexpected
    failure becomes one counted drop, not a crash."""
    reader = reader_for(unit.format)
    policy = reader.options(unit).control_chars
    try:
        for cand in reader.read(unit):
            yield normalise_candidate(cand, policy, unit.format)
    except Exception as err:  # a reader bug or I/O failure on one unit is still counted
        where = f"{unit.rel()}@{unit.start}"
        yield read_drop(unit, where, unit.format, f"unreadable_file:{type(err).__name__}")

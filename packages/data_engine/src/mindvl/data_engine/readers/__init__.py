"""Readers: raw corpora (llava, webdataset, parquet, folder) -> :class:`Candidate` s.

The driver calls :func:`plan_source` per recipe source (lists files, splits them into
sorted units, records size + mtime of every input file, fails early on a missing path);
workers call :func:`read_unit`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from mindvl.common.errors import UserError
from mindvl.common.manifest import InputFile
from mindvl.common.recipe import SourceSpec
from mindvl.data_engine.readers.base import ReadUnit, files_under, resolve_source
from mindvl.data_engine.readers.text_clean import POLICIES, normalise_candidate
from mindvl.data_engine.record import Candidate

READERS = {
    "llava": "mindvl.data_engine.readers.llava",
    "webdataset": "mindvl.data_engine.readers.webdataset",
    "parquet": "mindvl.data_engine.readers.parquet",
    "folder": "mindvl.data_engine.readers.folder",
}
COMMON_OPTIONS = {"prefer", "storage_options", "control_chars"}
OPTIONS = {
    "llava": {"chunk_bytes", "image_root"},
    "webdataset": set(),
    "parquet": {"id_column", "image_column", "caption_column", "conversations_column"},
    "folder": {"chunk_files"},
}


def _module(fmt: str) -> Any:
    return importlib.import_module(READERS[fmt])


def _check_options(spec: SourceSpec) -> None:
    allowed = COMMON_OPTIONS | OPTIONS[spec.format]
    bad = sorted(set(spec.options) - allowed)
    if bad:
        raise UserError(
            f"source {spec.name}: options.{bad[0]}: unknown option for format {spec.format} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    prefer = spec.options.get("prefer", "conversation")
    if prefer not in ("caption", "conversation"):
        raise UserError(
            f"source {spec.name}: options.prefer: {prefer!r} (allowed: caption, conversation)"
        )
    policy = spec.options.get("control_chars", "remove")
    if policy not in POLICIES:
        raise UserError(
            f"source {spec.name}: options.control_chars: {policy!r} (allowed: {', '.join(POLICIES)})"
        )


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
    _check_options(spec)
    fs, protocol, root, matches = resolve_source(spec.path, spec.options, spec.name)
    mod = _module(spec.format)
    base = ReadUnit(
        source=spec.name,
        category=spec.category,
        format=spec.format,
        protocol=protocol,
        root=root,
        path=root,
        options=dict(spec.options),
    )
    if spec.format == "folder":
        dirs = [m for m in matches if fs.isdir(m)]
        if not dirs:
            raise UserError(f"source {spec.name}: folder format needs a directory: {spec.path}")
        files, links = mod.skipped_links(base, dirs, sorted({f for d in dirs for f in fs.find(d)}))
        units = mod.split(base, files, links)
        inputs = [_input(fs, spec.name, f, protocol) for f in files]
    else:
        files = files_under(fs, matches, mod.SUFFIXES)
        units = []
        inputs = []
        for f in files:
            inp = _input(fs, spec.name, f, protocol)
            inputs.append(inp)
            one = ReadUnit(**{**base.__dict__, "path": f})
            if spec.format == "llava":
                units += mod.split(one, inp.size)
            elif spec.format == "parquet":
                units += mod.split(one, fs)
            else:
                units.append(one)
    if not units:
        raise UserError(
            f"source {spec.name}: no {spec.format} input under {spec.path} "
            f"(looked for {', '.join(getattr(mod, 'SUFFIXES', ('files',)))})"
        )
    return units, inputs


def read_unit(unit: ReadUnit) -> Iterator[Candidate]:
    """Candidates of one unit, their text normalised (``text_clean.py``); an unexpected
    failure becomes one counted drop, not a crash."""
    mod = _module(unit.format)
    policy = unit.options.get("control_chars", "remove")
    try:
        for cand in mod.read(unit):
            yield normalise_candidate(cand, policy, unit.format)
    except Exception as err:  # a reader bug or I/O failure on one unit is still counted
        from mindvl.data_engine.readers.base import read_drop

        where = f"{unit.rel()}@{unit.start}"
        yield read_drop(unit, where, unit.format, f"unreadable_file:{type(err).__name__}")

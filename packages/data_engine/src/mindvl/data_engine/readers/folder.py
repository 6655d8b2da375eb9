"""A folder of images with sidecars: ``a/b/x.jpg`` + ``a/b/x.txt`` (caption) and/or
``a/b/x.json`` (``{"conversations": [...]}`` or ``{"caption": ...}``).

Files are grouped by path without the last extension; the driver lists the tree once and
splits the sorted groups into units of ``options.chunk_files`` (default 256). A file whose
real path leaves the source root (a symlink out) is never read: its group is dropped as
``unsafe_path``. Links the listing does not follow (a symlinked subfolder, a dangling
link) are not read either; each is counted as a read drop ``skipped_link`` (carried by
the source's first unit).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from pydantic import Field

from mindvl.common.errors import UserError
from mindvl.data_engine.readers.base import (
    IMAGE_EXTS,
    Reader,
    ReaderOptions,
    ReadUnit,
    candidate,
    choose_text,
    inside_real,
    read_drop,
    sidecar_error,
    sidecar_text,
)
from mindvl.data_engine.record import Candidate, ImageRecord

NAME = "folder"
SIDECARS = frozenset({"txt", "json"})


def _stem(rel: str) -> tuple[str, str]:
    d, base = posixpath.split(rel)
    stem, dot, ext = base.rpartition(".")
    return (posixpath.join(d, stem), ext.lower()) if dot else (rel, "")


def skipped_links(unit: ReadUnit, dirs: list[str], files: list[str]) -> tuple[list[str], list[str]]:
    """(``files`` without dangling links, root-relative paths of the links under ``dirs``
    that are not read: a linked subfolder, which the listing does not enter, or a
    dangling link). Local sources only; other filesystems have no links."""
    if unit.protocol not in ("file", "local"):
        return files, []
    files = [f for f in files if os.path.isfile(f)]  # find lists links to dirs as files
    listed, found = set(files), set()
    for d in dirs:
        for here, subdirs, names in os.walk(d, followlinks=False):
            for name in subdirs + names:
                path = os.path.join(here, name)
                if os.path.islink(path) and path not in listed:
                    found.add(posixpath.relpath(path, unit.root))
    return files, sorted(found)


class FolderOptions(ReaderOptions):
    chunk_files: int = Field(default=256, gt=0, description="sample groups per unit")


class FolderReader(Reader):
    name = NAME
    Options = FolderOptions

    def split(
        self, base: ReadUnit, fs: Any, matches: list[str]
    ) -> tuple[list[ReadUnit], list[str]]:
        """Units of whole groups (all sidecars of a stem stay in one unit); the first unit
        also carries the links to count as skipped."""
        dirs = [m for m in matches if fs.isdir(m)]
        if not dirs:
            raise UserError(f"source {base.source}: folder format needs a directory: {base.path}")
        files, links = skipped_links(base, dirs, sorted({f for d in dirs for f in fs.find(d)}))
        keep = IMAGE_EXTS | SIDECARS
        rels = sorted(r for f in files if _stem(r := posixpath.relpath(f, base.root))[1] in keep)
        groups: dict[str, list[str]] = {}
        for r in rels:
            groups.setdefault(_stem(r)[0], []).append(r)
        stems = sorted(groups)
        chunk = self.options(base).chunk_files
        out = []
        for i in range(0, len(stems), chunk):
            members = tuple(m for s in stems[i : i + chunk] for m in groups[s])
            out.append(replace(base, start=i, members=members))
        if links:
            first = out[0] if out else replace(base, start=0, members=())
            out[:1] = [replace(first, skipped=tuple(links))]
        return out, files

    def read(self, unit: ReadUnit) -> Iterator[Candidate]:
        for rel in unit.skipped:
            yield read_drop(unit, rel, NAME, "skipped_link")
        fs, prefer = unit.fs(), self.options(unit).prefer
        groups: dict[str, dict[str, str]] = {}
        for rel in unit.members:
            stem, ext = _stem(rel)
            groups.setdefault(stem, {})[ext] = rel
        for stem in sorted(groups):
            yield _group(unit, fs, stem, groups[stem], prefer)


def _group(unit: ReadUnit, fs: Any, stem: str, parts: dict[str, str], prefer: str) -> Candidate:
    c = candidate(unit, stem)
    paths = {ext: posixpath.join(unit.root, rel) for ext, rel in parts.items()}
    if not all(inside_real(unit, p) for p in paths.values()):
        c.drop("read", NAME, "unsafe_path")
        return c
    images = sorted(ext for ext in paths if ext in IMAGE_EXTS)
    if not images:
        c.drop("read", NAME, "missing_image")
        return c
    try:
        c.images = [ImageRecord(fs.cat_file(paths[ext])) for ext in images]
        txt = fs.cat_file(paths["txt"]) if "txt" in paths else None
        meta = fs.cat_file(paths["json"]) if "json" in paths else None
        caption, conversation = sidecar_text(txt, meta)
    except (ValueError, OSError) as err:  # NonUtf8 and JSONDecodeError are ValueErrors
        c.drop("read", NAME, sidecar_error(err))
        return c
    return choose_text(c, caption, conversation, prefer, NAME)

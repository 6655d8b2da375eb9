"""WebDataset / img2dataset tar shards: members sharing a key form one sample.

``{key}.jpg|png|webp|...`` holds the image, ``{key}.txt`` (or ``.caption``) the caption,
``{key}.json`` either ``{"conversations": [...]}`` or img2dataset metadata with a
``caption``. The tar is streamed (``r|*``, gzip allowed); nothing is extracted to disk.
A group with an unsafe member (``..`` or absolute name, symlink, hard link, device, fifo)
is dropped whole as ``unsafe_member`` and the member's bytes are never read.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from mindvl.data_engine.readers.base import (
    IMAGE_EXTS,
    Reader,
    ReadUnit,
    candidate,
    choose_text,
    read_drop,
    sidecar_error,
    sidecar_text,
)
from mindvl.data_engine.record import Candidate, ImageRecord

NAME = "webdataset"


@dataclass
class _Group:
    key: str
    parts: dict[str, bytes] = field(default_factory=dict)
    images: list[bytes] = field(default_factory=list)
    unsafe: bool = False


def _split_name(name: str) -> tuple[str, str]:
    """WebDataset convention: the key ends at the first dot of the base name."""
    d, base = posixpath.split(name)
    stem, _, ext = base.partition(".")
    return posixpath.join(d, stem), ext.lower()


def _unsafe(m: tarfile.TarInfo) -> bool:
    name = m.name
    if name.startswith("/") or "\\" in name or ".." in name.split("/"):
        return True
    return not (m.isfile() or m.isdir())  # symlink, hard link, device, fifo


class WebDatasetReader(Reader):
    name = NAME
    suffixes = (".tar", ".tar.gz", ".tgz")

    def read(self, unit: ReadUnit) -> Iterator[Candidate]:
        return _read(unit, self.options(unit).prefer)


def _read(unit: ReadUnit, prefer: str) -> Iterator[Candidate]:
    rel = unit.rel()
    fs = unit.fs()
    group: _Group | None = None
    try:
        with fs.open(unit.path, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tf:
            for m in tf:
                if m.isdir() and not _unsafe(m):
                    continue
                key, ext = _split_name(m.name)
                if group is None or key != group.key:
                    if group is not None:
                        yield _finish(unit, rel, group, prefer)
                    group = _Group(key)
                if _unsafe(m):
                    group.unsafe = True
                    continue
                data = tf.extractfile(m).read()  # type: ignore[union-attr]
                if ext in IMAGE_EXTS:
                    group.images.append(data)
                else:
                    group.parts[ext] = data
    except (tarfile.TarError, OSError, EOFError):
        if group is not None:
            yield read_drop(unit, f"{rel}:{group.key}", NAME, "truncated_tar")
            group = None
        else:
            yield read_drop(unit, rel, NAME, "unreadable_tar")
    if group is not None:
        yield _finish(unit, rel, group, prefer)


def _finish(unit: ReadUnit, rel: str, g: _Group, prefer: str) -> Candidate:
    if g.unsafe:
        return read_drop(unit, f"{rel}:{g.key}", NAME, "unsafe_member")
    c = candidate(unit, g.key)
    txt = next((g.parts[ext] for ext in ("txt", "caption") if ext in g.parts), None)
    try:
        caption, conversation = sidecar_text(txt, g.parts.get("json"))
    except ValueError as err:  # NonUtf8 and JSONDecodeError are ValueErrors
        c.drop("read", NAME, sidecar_error(err))
        return c
    if not g.images:
        c.drop("read", NAME, "missing_image")
        return c
    c.images = [ImageRecord(data) for data in g.images]
    return choose_text(c, caption, conversation, prefer, NAME)

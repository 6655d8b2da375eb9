"""What every reader shares: the :class:`Reader` base class and its options, the unit of
reading work, the source root, and counted drops.

A reader is one class per format (``name``, ``suffixes``, an ``Options`` model validated
from the recipe's ``sources[i].options``: unknown keys are errors naming the field). On
the driver its :meth:`Reader.split` turns a source into :class:`ReadUnit` s (a file, a
byte range of a big JSONL, a Parquet row group, a chunk of a folder), sorted so a build is
deterministic; on a worker :meth:`Reader.read` turns one unit into :class:`Candidate` s.
Anything wrong
with one record (bad JSON, missing image, non-UTF-8 text, an unsafe tar member) becomes a
dropped candidate with stage ``read`` so it is counted, never a crash; only problems that
make the whole source unusable (missing path, empty glob) are user errors, raised before
any work starts.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, Literal

from pydantic import Field

from mindvl.common.config import StrictModel
from mindvl.common.errors import UserError
from mindvl.common.sample import make_key
from mindvl.data_engine.record import Candidate

IMAGE_EXTS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"})
ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}


@dataclass(frozen=True)
class ReadUnit:
    """One piece of reading work; serialised as JSON so it travels as a plain Ray row."""

    source: str
    category: str
    format: str
    protocol: str  # fsspec protocol of the source ("file", "s3", "memory", ...)
    root: str  # protocol-less source root; nothing outside it is ever read
    path: str  # protocol-less file (or directory for the folder format)
    start: int = 0  # byte offset / row group / first stem index, depending on the reader
    end: int = -1
    members: tuple[str, ...] = ()  # folder format: the relative file names of this unit
    options: dict[str, Any] = field(default_factory=dict)  # the source's validated options
    skipped: tuple[str, ...] = ()  # links not followed, counted as drops by this unit

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReadUnit:
        data = json.loads(text)
        data["members"] = tuple(data["members"])
        data["skipped"] = tuple(data.get("skipped", ()))
        return cls(**data)

    def fs(self):
        import fsspec

        return fsspec.filesystem(self.protocol, **self.options.get("storage_options", {}))

    def rel(self, path: str | None = None) -> str:
        """``path`` relative to the source root, for readable raw ids of drops."""
        p = self.path if path is None else path
        return posixpath.relpath(p, self.root) if p != self.root else posixpath.basename(p)


class ReaderOptions(StrictModel):
    """Options every source may set (``sources[i].options``)."""

    prefer: Literal["caption", "conversation"] = Field(
        default="conversation", description="which text a sample with both keeps"
    )
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="passed to fsspec (credentials, endpoints)"
    )
    control_chars: Literal["remove", "drop"] = Field(
        default="remove", description="control characters in text: removed, or the sample dropped"
    )


class Reader:
    """One source format. ``split`` runs on the driver, ``read`` on workers."""

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = ()  # input files of the format (lower case)
    Options: ClassVar[type[ReaderOptions]] = ReaderOptions

    def options(self, unit: ReadUnit) -> ReaderOptions:
        return self.Options.model_validate(unit.options)

    def split(
        self, base: ReadUnit, fs: Any, matches: list[str]
    ) -> tuple[list[ReadUnit], list[str]]:
        """(sorted units, input files) of one source whose path matched ``matches``; by
        default each file ending in ``suffixes`` is split by :meth:`split_file`."""
        files = files_under(fs, matches, self.suffixes)
        units = [u for f in files for u in self.split_file(replace(base, path=f), fs)]
        return units, files

    def split_file(self, unit: ReadUnit, fs: Any) -> list[ReadUnit]:
        """The units of one input file: the whole file by default."""
        return [unit]

    def read(self, unit: ReadUnit) -> Iterator[Candidate]:
        raise NotImplementedError


def candidate(unit: ReadUnit, raw_id: str) -> Candidate:
    return Candidate(
        key=make_key(unit.source, raw_id),
        source=unit.source,
        category=unit.category,
        raw_id=raw_id,
    )


def read_drop(unit: ReadUnit, raw_id: str, op: str, reason: str) -> Candidate:
    """A counted drop at the read stage, keyed by where it came from."""
    c = candidate(unit, raw_id)
    c.drop("read", op, reason)
    return c


class NonUtf8(ValueError):
    pass


def decode_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NonUtf8("non_utf8_text") from None


def normalise_conversation(turns: Any) -> list[dict[str, str]]:
    """LLaVA ``{"from": "human"|"gpt", "value"}`` or ``{"role", "content"}`` -> role/content."""
    if not isinstance(turns, list) or not turns:
        raise ValueError("bad_conversation")
    out = []
    for t in turns:
        if not isinstance(t, dict):
            raise ValueError("bad_conversation")
        role = ROLES.get(str(t.get("from", t.get("role", ""))).lower())
        content = t.get("value", t.get("content"))
        if role is None or not isinstance(content, str):
            raise ValueError("bad_conversation")
        out.append({"role": role, "content": content})
    return out


def sidecar_text(txt: bytes | None, meta_json: bytes | None) -> tuple[str | None, Any]:
    """(caption, conversation) from img2dataset-style sidecars: a ``txt`` caption and a
    ``json`` holding ``conversations`` and/or ``caption``. Raises NonUtf8, JSONDecodeError
    or ValueError; :func:`sidecar_error` turns those into drop reasons."""
    caption = decode_text(txt) if txt is not None else None
    conversation = None
    if meta_json is not None:
        meta = json.loads(decode_text(meta_json))
        if isinstance(meta, dict) and meta.get("conversations") is not None:
            conversation = normalise_conversation(meta["conversations"])
        if caption is None and isinstance(meta, dict) and isinstance(meta.get("caption"), str):
            caption = meta["caption"]
    return caption, conversation


def sidecar_error(err: Exception) -> str:
    """The drop reason for an exception raised while reading a sample's text."""
    if isinstance(err, NonUtf8):
        return "non_utf8_text"
    if isinstance(err, json.JSONDecodeError):
        return "bad_json"
    if isinstance(err, ValueError):
        return "bad_conversation"
    return "unreadable_file"


def choose_text(
    c: Candidate,
    caption: str | None,
    conversation: list[dict[str, str]] | None,
    prefer: str,
    op: str,
) -> Candidate:
    """Set exactly one of caption / conversation (``prefer`` wins when both exist)."""
    if caption is not None and not isinstance(caption, str):
        caption = None
    if caption is not None and conversation is not None:
        if prefer == "caption":
            conversation = None
        else:
            caption = None
    if caption is None and conversation is None:
        c.drop("read", op, "no_text")
        return c
    c.caption, c.conversation = caption, conversation
    return c


def inside(root: str, path: str) -> bool:
    """Whether the normalised ``path`` lies under ``root`` (no ``..`` escape)."""
    root = posixpath.normpath(root)
    path = posixpath.normpath(path)
    return path == root or path.startswith(root.rstrip("/") + "/")


def inside_real(unit: ReadUnit, path: str) -> bool:
    """Like :func:`inside`, and for local files also after resolving symlinks."""
    if not inside(unit.root, path):
        return False
    if unit.protocol in ("file", "local"):
        return inside(os.path.realpath(unit.root), os.path.realpath(path))
    return True


def has_magic(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def resolve_source(
    path: str, options: dict[str, Any], source: str
) -> tuple[Any, str, str, list[str]]:
    """(fs, protocol, root, matched paths) of a source path; user error if nothing matches."""
    import fsspec

    try:
        fs, stripped = fsspec.core.url_to_fs(path, **options.get("storage_options", {}))
    except (ValueError, ImportError) as err:
        raise UserError(f"source {source}: cannot open {path!r}: {err}") from None
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if has_magic(stripped):
        parts = stripped.split("/")
        first = next(i for i, p in enumerate(parts) if has_magic(p))
        root = "/".join(parts[:first]) or "/"
        matches = sorted(fs.glob(stripped))
        if not matches:
            raise UserError(f"source {source}: glob {path!r} matches nothing")
    else:
        if not fs.exists(stripped):
            raise UserError(f"source {source}: path not found: {path}")
        matches = [stripped.rstrip("/") or "/"]
        root = matches[0] if fs.isdir(matches[0]) else posixpath.dirname(matches[0])
    return fs, protocol, root.rstrip("/") or "/", matches


def files_under(fs: Any, matches: list[str], suffixes: tuple[str, ...]) -> list[str]:
    """Files among ``matches`` (directories searched recursively) ending with ``suffixes``."""
    out: set[str] = set()
    for m in matches:
        found = fs.find(m) if fs.isdir(m) else [m]
        out.update(f for f in found if f.lower().endswith(suffixes))
    return sorted(out)

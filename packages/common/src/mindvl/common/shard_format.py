"""The shard format's one writer and one reader (WebDataset tar groups, docs/FORMAT.md).

Writing: byte-exact tar members with fixed metadata. Headers come from
:class:`tarfile.TarInfo` (POSIX pax format, so long keys are fine) with mtime 0, uid/gid 0,
empty user/group names and mode 0644; data is padded to 512 bytes and a shard ends with two
zero blocks. Writing the bytes ourselves makes a shard's size known before it is written,
which is what lets the data engine plan (and resume) shards exactly. A sample's group is
:func:`sample_members`: ``json``, its images, and empty image slots up to the build's width.

Reading: :func:`iter_groups` streams groups from any byte offset, each with the offset of
the next, so ``(shard, offset)`` is a resume point.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mindvl.common.sample import Sample, empty_image_members

BLOCK = 512
END = b"\0" * (2 * BLOCK)
MTIME = 0
MODE = 0o644


def header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = MTIME
    info.mode = MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def member_bytes(name: str, data: bytes) -> bytes:
    return header(name, len(data)) + data + padding(len(data))


def member_size(name: str, size: int) -> int:
    return len(header(name, size)) + size + (-size % BLOCK)


def image_width(samples: Iterable[Sample]) -> int:
    """Image slots every sample of a build gets: the largest image count."""
    return max((len(s.images) for s in samples), default=0)


def sample_member_names(sample: Sample, width: int) -> list[str]:
    """Full member names of ``sample``'s group, in order (``json``, images, empty slots)."""
    exts = ["json", *(im.member for im in sample.images)]
    exts += empty_image_members(len(sample.images), width)
    return [f"{sample.key}.{ext}" for ext in exts]


def sample_members(sample: Sample, images: list[bytes], width: int) -> list[tuple[str, bytes]]:
    """``(name, data)`` of ``sample``'s group; ``images`` are its images' bytes, in order."""
    if len(images) != len(sample.images):
        raise ValueError(f"{sample.key}: {len(sample.images)} images listed, {len(images)} given")
    data = [sample.to_json_bytes(), *images]
    data += [b""] * (width - len(sample.images))
    return list(zip(sample_member_names(sample, width), data, strict=True))


def write_shard(path: str | Path, groups: Iterable[list[tuple[str, bytes]]]) -> int:
    """Write one shard of member groups (no planning, no journal: tests, tools, synthetic
    shards); returns its size in bytes."""
    size = 0
    with open(path, "wb") as f:
        for group in groups:
            for name, data in group:
                size += f.write(member_bytes(name, data))
        size += f.write(END)
    return size


@dataclass(frozen=True)
class Group:
    """One tar group: ``members`` maps the member extension (``json``, ``img0.bin``) to bytes."""

    key: str
    members: dict[str, bytes]
    offset: int  # byte offset of the group's first tar header


def split_name(name: str) -> tuple[str, str]:
    """``dir/key.img0.bin`` -> (``key``, ``img0.bin``): WebDataset splits at the first dot."""
    base = name.rsplit("/", 1)[-1]
    key, _, ext = base.partition(".")
    return key, ext


def iter_groups(path: str | Path, start: int = 0) -> Iterator[tuple[Group, int]]:
    """Groups from byte ``start`` on, each with the offset of the group after it (the file
    size after the last one)."""
    size = Path(path).stat().st_size
    if start >= size:
        return
    with open(path, "rb") as f:
        f.seek(start)
        tf = tarfile.open(fileobj=f, mode="r:")  # noqa: SIM115 (closed with f)
        key: str | None = None
        members: dict[str, bytes] = {}
        first = start
        while True:
            info = tf.next()
            if info is None:
                break
            tf.members.clear()  # streaming: do not keep every header of a large shard
            if not info.isfile():
                continue
            k, ext = split_name(info.name)
            if k != key:
                if key is not None:
                    yield Group(key, members, first), info.offset
                key, members, first = k, {}, info.offset
            data = tf.extractfile(info)
            members[ext] = data.read() if data else b""
        if key is not None:
            yield Group(key, members, first), size

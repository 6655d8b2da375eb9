"""Byte-exact WebDataset tar members with fixed metadata.

Headers come from :class:`tarfile.TarInfo` (POSIX pax format, so long keys are fine) with
mtime 0, uid/gid 0, empty user/group names and mode 0644; data is padded to 512 bytes and a
shard ends with two zero blocks. Writing the bytes ourselves makes a shard's size known
before it is written, which is what lets shards be planned (and resumed) exactly.
"""

from __future__ import annotations

import tarfile

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

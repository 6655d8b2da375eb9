"""Writing a stage's shards: planned up front, written atomically, resumable after a kill.

The plan (which samples go to which shard) is a pure function of the ordered picks and the
shard limits, so a rerun computes the same plan. Each shard is written to a hidden
temporary file, fsynced and renamed; after the rename a line goes to a journal
(``.mix-journal.jsonl``) with the shard's content digest (over member names and data
hashes) and its sha256. On a rerun a shard is reused only if the journal has it with the
same content digest and the file on disk still hashes to the recorded sha256; anything else
(partial temp files, a shard that fails that check, shards not in the plan) is rewritten or
removed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mindvl.common.manifest import ShardRecord, sha256_file
from mindvl.common.shard_format import END, header, member_size, padding

JOURNAL = ".mix-journal.jsonl"


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PlannedShard:
    name: str
    start: int  # index range into the ordered picks
    stop: int
    bytes: int
    content_digest: str


def plan_shards(
    stage: str, members: list[list[Member]], max_samples: int, max_bytes: int
) -> list[PlannedShard]:
    """Cut the ordered samples into shards within both limits (a lone oversize sample
    still gets a shard of its own)."""
    sizes = [sum(member_size(m.name, m.size) for m in ms) for ms in members]
    shards: list[PlannedShard] = []
    start, total = 0, len(END)
    for i, size in enumerate(sizes + [None]):
        full = i - start >= max_samples or (size is not None and total + size > max_bytes)
        if i > start and (size is None or full):
            shards.append(_planned(stage, len(shards), start, i, total, members))
            start, total = i, len(END)
        if size is not None:
            total += size
    return shards


def _planned(stage: str, index: int, start: int, stop: int, total: int, members) -> PlannedShard:
    h = hashlib.sha256()
    for ms in members[start:stop]:
        for m in ms:
            h.update(f"{m.name}\0{m.size}\0{m.sha256}\n".encode())
    return PlannedShard(f"{stage}-{index:06d}.tar", start, stop, total, h.hexdigest())


def _journal(out_dir: Path) -> dict[str, dict]:
    path = out_dir / JOURNAL
    entries: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                e = json.loads(line)
                entries[e["name"]] = e
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a torn last line after a kill
    return entries


def _reusable(path: Path, plan: PlannedShard, entry: dict | None) -> ShardRecord | None:
    if entry is None or entry.get("content") != plan.content_digest or not path.is_file():
        return None
    if path.stat().st_size != plan.bytes or sha256_file(path) != entry.get("sha256"):
        return None
    return ShardRecord(
        name=plan.name, bytes=plan.bytes, samples=plan.stop - plan.start, sha256=entry["sha256"]
    )


def _drop_sidecar(shard: Path) -> None:
    """A reader's per-tar index (Energon's ``.tar.idx``) is stale once the tar changes;
    rerun ``energon prepare`` after a rebuild."""
    shard.with_name(shard.name + ".idx").unlink(missing_ok=True)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_shards(
    out_dir: Path,
    stage: str,
    plan: list[PlannedShard],
    member_data: Callable[[int], Iterator[tuple[str, bytes]]],
) -> list[ShardRecord]:
    """Write (or reuse) every planned shard; ``member_data(i)`` yields sample i's members."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {p.name for p in plan}
    for p in out_dir.glob(f".{stage}-*.tar.tmp"):
        p.unlink()
    for p in out_dir.glob(f"{stage}-*.tar"):
        if p.name not in names:
            p.unlink()
            _drop_sidecar(p)
    journal = _journal(out_dir)
    records = []
    with open(out_dir / JOURNAL, "a", encoding="utf-8") as log:
        for shard in plan:
            path = out_dir / shard.name
            record = _reusable(path, shard, journal.get(shard.name))
            if record is None:
                _drop_sidecar(path)
                record = _write_one(out_dir, shard, member_data)
                log.write(
                    json.dumps(
                        {
                            "name": shard.name,
                            "content": shard.content_digest,
                            "sha256": record.sha256,
                        }
                    )
                    + "\n"
                )
                log.flush()
                os.fsync(log.fileno())
            records.append(record)
    return records


def _write_one(out_dir: Path, shard: PlannedShard, member_data) -> ShardRecord:
    final = out_dir / shard.name
    tmp = out_dir / f".{shard.name}.tmp"
    h = hashlib.sha256()
    size = 0
    with open(tmp, "wb") as f:
        for i in range(shard.start, shard.stop):
            for name, data in member_data(i):
                for chunk in (header(name, len(data)), data, padding(len(data))):
                    f.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
        f.write(END)
        h.update(END)
        size += len(END)
        f.flush()
        os.fsync(f.fileno())
    if size != shard.bytes:
        raise AssertionError(f"{shard.name}: wrote {size} bytes, planned {shard.bytes}")
    tmp.replace(final)
    _fsync_dir(out_dir)
    return ShardRecord(
        name=shard.name, bytes=size, samples=shard.stop - shard.start, sha256=h.hexdigest()
    )

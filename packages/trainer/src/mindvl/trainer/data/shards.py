"""Reading a stage's shards: verified against the manifest, split by rank and worker,
and addressable by byte offset so a reader can resume exactly where it stopped.

Shard ``i`` goes to logical stream ``i % n_streams``; stream ``s`` goes to rank
``s % world`` and, within a rank, to dataloader worker ``(s // world) % num_workers``.
With ``n_streams = world * num_workers`` (the default) this is "shard i -> rank i % world,
then worker". Fixing ``n_streams`` independently of the world size keeps the global batch
identical when the same run is spread over a different number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mindvl.common import shard_format
from mindvl.common.errors import UserError
from mindvl.common.manifest import RatioManifest, verify_shards


@dataclass(frozen=True)
class RawSample:
    """One tar group: ``members`` maps the member extension (``json``, ``img0.bin``) to bytes."""

    key: str
    members: dict[str, bytes]
    shard: int  # index into manifest.shards
    offset: int  # byte offset of the group's first tar header


def streams_of_shards(n_shards: int, n_streams: int) -> list[list[int]]:
    """Shard indices of each logical stream (shard i -> stream i % n_streams)."""
    return [list(range(s, n_shards, n_streams)) for s in range(n_streams)]


def streams_of_rank(n_streams: int, rank: int, world: int) -> list[int]:
    if n_streams % world:
        raise UserError(
            f"data streams ({n_streams}) must be a multiple of the world size ({world})"
        )
    return list(range(rank, n_streams, world))


def streams_of_worker(rank_streams: list[int], worker: int, num_workers: int) -> list[int]:
    return rank_streams[worker::num_workers]


def check_shards(manifest: RatioManifest, shard_dir: str | Path) -> None:
    """Fail with one line if any shard is missing or differs from the manifest's digest."""
    problems = verify_shards(manifest, shard_dir)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise UserError(f"{shard_dir}: {problems[0]}{more}; rebuild or re-copy the shards")
    if not manifest.shards:
        raise UserError(f"{shard_dir}: the manifest lists no shards")


def iter_groups(path: str | Path, shard: int, start: int = 0) -> Iterator[tuple[RawSample, int]]:
    """Tar groups from byte ``start`` on, each with the offset of the group after it
    (the file size after the last one), so ``(shard, next_offset)`` is a resume point."""
    for group, next_offset in shard_format.iter_groups(path, start):
        yield RawSample(group.key, group.members, shard, group.offset), next_offset


def read_group(path: str | Path, shard: int, offset: int) -> RawSample:
    """The one group that starts at ``offset`` (used to refill a packer buffer on resume)."""
    for sample, _ in iter_groups(path, shard, offset):
        return sample
    raise UserError(
        f"{path}: no sample at byte offset {offset}; the shard changed since the checkpoint"
    )

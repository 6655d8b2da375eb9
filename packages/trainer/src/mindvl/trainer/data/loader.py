"""The rank's packed loader: its logical streams in round robin, in-process or in workers.

Each yielded :class:`PackedBatch` carries the state of the stream it came from *after*
that pack, so :meth:`PackedLoader.state_dict` always describes exactly the batches the
trainer consumed, even with dataloader workers prefetching ahead. On resume the rank's
stream list is rotated so that the worker asked first holds the stream that is next.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Iterator

import torch

from mindvl.common.errors import UserError
from mindvl.trainer.batch import PackedBatch
from mindvl.trainer.data.packing import build_batch
from mindvl.trainer.data.shards import streams_of_rank, streams_of_shards, streams_of_worker
from mindvl.trainer.data.stream import PackStream, StageData, StreamSettings


def _iterate(
    data: StageData,
    stream_ids: list[int],
    states: dict[int, dict],
    cfg: StreamSettings,
    n_streams: int,
) -> Iterator[tuple[PackedBatch, int, dict]]:
    shards = streams_of_shards(len(data.manifest.shards), n_streams)
    streams = []
    for sid in stream_ids:
        s = PackStream(data, sid, shards[sid], cfg)
        if sid in states:
            s.load(states[sid])
        streams.append(s)
    pad_id = data.tokenizer.pad_id
    rule = data.manifest.image_tokens
    live = list(streams)
    while live:
        for s in list(live):
            pack = s.next_pack()
            if pack is None:
                live.remove(s)
                continue
            yield build_batch(pack, cfg.budget.seq_len, pad_id, rule), s.id, s.state()


def leave_without_finalizing(_worker_id: int = 0) -> None:
    """A dataloader worker's ``worker_init_fn``: once Python starts shutting the worker down,
    it leaves at once (``os._exit``, stdio flushed). The loader stops its workers mid-stream
    (a stage reaches its steps, a loader is dropped); a worker's queue thread may then still
    be pickling a batch, inside torch's C++ with the GIL released, and Python 3.11 ends such
    a daemon thread by unwinding it through those frames: ``std::terminate``, and the parent
    reports "DataLoader worker ... is killed by signal: Aborted" (a core file where they are
    on). A worker leaves only when the loader stops it: nothing in flight is wanted then."""

    def leave() -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, OSError, ValueError):  # None, or closed
                stream.flush()
        os._exit(0)

    atexit.register(leave)


class _WorkerStreams(torch.utils.data.IterableDataset):
    def __init__(self, loader: PackedLoader, rotated: list[int]) -> None:
        self.loader, self.rotated = loader, rotated

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        mine = streams_of_worker(self.rotated, info.id, info.num_workers)
        ld = self.loader
        return _iterate(ld.data, mine, ld.states, ld.cfg, ld.n_streams)


class PackedLoader:
    def __init__(
        self,
        data: StageData,
        cfg: StreamSettings,
        rank: int = 0,
        world: int = 1,
        n_streams: int | None = None,
        num_workers: int = 0,
    ) -> None:
        self.data, self.cfg, self.num_workers = data, cfg, num_workers
        self.n_streams = n_streams or world * max(1, num_workers)
        if self.n_streams > len(data.manifest.shards):
            raise UserError(
                f"{self.n_streams} data streams but only {len(data.manifest.shards)} shards; "
                "set data.streams lower or write more shards"
            )
        self.rank, self.world = rank, world
        self.stream_ids = streams_of_rank(self.n_streams, rank, world)
        if num_workers > 0 and len(self.stream_ids) % num_workers:
            raise UserError(
                f"{len(self.stream_ids)} data streams per rank do not split evenly over {num_workers} workers"
            )
        self.states: dict[int, dict] = {}
        self.next = 0  # index into stream_ids of the stream that gives the next batch

    def __iter__(self) -> Iterator[PackedBatch]:
        k = self.next
        rotated = self.stream_ids[k:] + self.stream_ids[:k]
        if self.num_workers > 0:
            source = torch.utils.data.DataLoader(
                _WorkerStreams(self, rotated),
                batch_size=None,
                num_workers=self.num_workers,
                prefetch_factor=2,
                # not fork: a forked worker inherits locks held by the parent's other
                # threads (a gRPC client from Ray, an accelerator runtime) and can hang
                multiprocessing_context="spawn",
                worker_init_fn=leave_without_finalizing,
            )
        else:
            source = _iterate(self.data, rotated, self.states, self.cfg, self.n_streams)
        for batch, sid, state in source:
            self.states[sid] = state
            self.next = (self.stream_ids.index(sid) + 1) % len(self.stream_ids)
            yield batch

    def state_dict(self) -> dict:
        return {
            "rank": self.rank,
            "world": self.world,
            "n_streams": self.n_streams,
            "next": self.next,
            "streams": [self.states[s] for s in self.stream_ids if s in self.states],
        }

    def load_state_dict(self, state: dict) -> None:
        if (state["world"], state["n_streams"]) != (self.world, self.n_streams):
            raise UserError(
                f"loader state was saved with world={state['world']} streams={state['n_streams']}; "
                f"this run has world={self.world} streams={self.n_streams}"
            )
        self.states = {s["stream"]: s for s in state["streams"]}
        self.next = state["next"]

    def load_rank_states(self, saved: list[dict]) -> None:
        """Resume from the states of every rank of a checkpoint, saved under any world size.

        The same world: this rank's own state. Another world: the logical streams are dealt
        out anew, which keeps the global batch only at a step boundary where every saved
        rank was about to start its stream round again (``next == 0``) and with the same
        number of streams; anything else is refused with a one-line reason.
        """
        if len(saved) == self.world:
            self.load_state_dict(saved[self.rank])
            return
        n = {s["n_streams"] for s in saved}
        if n != {self.n_streams}:
            raise UserError(
                f"the checkpoint's loader has {sorted(n)} data streams, this run {self.n_streams}:"
                " resuming under another world size needs the same data.streams"
            )
        if any(s["next"] for s in saved):
            raise UserError(
                f"the checkpoint's loaders stopped inside a round of their streams, so its"
                f" {len(saved)} ranks cannot be re-split over {self.world}: choose"
                " tokens_per_step/seq_len a multiple of data.streams, or resume on"
                f" {len(saved)} ranks"
            )
        by_stream = {st["stream"]: st for s in saved for st in s["streams"]}
        self.states = {sid: by_stream[sid] for sid in self.stream_ids if sid in by_stream}
        self.next = 0

    def drops(self) -> dict:
        """Dropped samples by reason and truncations, summed over this rank's streams."""
        out: dict = {"dropped": {}, "truncated": 0}
        for st in self.states.values():
            for reason, n in st["drops"]["dropped"].items():
                out["dropped"][reason] = out["dropped"].get(reason, 0) + n
            out["truncated"] += st["drops"]["truncated"]
        return out

"""One logical data stream: its shards in epoch order -> encoded samples -> packs.

The stream's whole position is ``(epoch, shard position, byte offset)`` plus the packer's
buffer (sample addresses), so :meth:`PackStream.state` is a few hundred bytes of JSON and
:meth:`PackStream.load` resumes with the identical continuation.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mindvl.common.errors import UserError
from mindvl.common.manifest import RatioManifest
from mindvl.common.text_tokens import TextTokenizer
from mindvl.trainer.data.encode import DropCounter, EncodedSample, encode_sample
from mindvl.trainer.data.packing import BestFitPacker, PackBudget
from mindvl.trainer.data.shards import RawSample, check_shards, iter_groups, read_group


@dataclass
class StageData:
    """A verified shard directory, its manifest and the tokenizer that counted it."""

    root: Path
    manifest: RatioManifest
    tokenizer: TextTokenizer

    @classmethod
    def open(cls, root: str | Path, tokenizer: str | Path | None = None, verify: bool = True):
        root = Path(root)
        manifest = RatioManifest.load(root)
        if verify:
            check_shards(manifest, root)
        tok_path = Path(tokenizer) if tokenizer else Path(manifest.tokenizer.path)
        if not tok_path.is_absolute() and not tok_path.exists():
            tok_path = root / tok_path
        return cls(root, manifest, TextTokenizer.from_path(tok_path))

    def shard_path(self, shard: int) -> Path:
        return self.root / self.manifest.shards[shard].name


@dataclass(frozen=True)
class StreamSettings:
    budget: PackBudget
    buffer_size: int = 128
    max_wait: int = 64
    seed: int = 0
    max_epochs: int | None = None  # None: cycle forever (the loop counts steps)


class PackStream:
    def __init__(self, data: StageData, stream_id: int, shards: list[int], cfg: StreamSettings):
        if not shards:
            raise UserError(f"data stream {stream_id} has no shards; use fewer data streams")
        self.data, self.id, self.shards, self.cfg = data, stream_id, shards, cfg
        self.packer = BestFitPacker(cfg.budget, cfg.buffer_size, cfg.max_wait)
        self.drops = DropCounter()
        self.epoch, self.pos, self.offset = 0, 0, 0
        self.samples_read = 0
        self._it: Iterator[tuple[RawSample, int]] | None = None
        self.exhausted = False

    def order(self, epoch: int) -> list[int]:
        """Shard order of an epoch: as listed first, then a seeded shuffle per epoch."""
        if epoch == 0:
            return list(self.shards)
        out = list(self.shards)
        random.Random(f"{self.cfg.seed}/{self.id}/{epoch}").shuffle(out)
        return out

    def _next_raw(self) -> RawSample | None:
        while True:
            if self.cfg.max_epochs is not None and self.epoch >= self.cfg.max_epochs:
                return None
            shard = self.order(self.epoch)[self.pos]
            if self._it is None:
                self._it = iter_groups(self.data.shard_path(shard), shard, self.offset)
            item = next(self._it, None)
            if item is not None:
                raw, self.offset = item
                self.samples_read += 1
                return raw
            self._it, self.offset = None, 0
            self.pos += 1
            if self.pos == len(self.shards):
                self.pos, self.epoch = 0, self.epoch + 1

    def _encode(self, raw: RawSample, drops: DropCounter) -> EncodedSample | None:
        b = self.cfg.budget
        return encode_sample(
            raw.members,
            raw.shard,
            raw.offset,
            self.data.tokenizer,
            self.data.manifest.image_tokens,
            b.seq_len,
            b.max_patches,
            drops,
        )

    def next_pack(self) -> list[EncodedSample] | None:
        """The next pack's samples, or None once a finite stream is used up."""
        while not self.packer.ready and not self.exhausted:
            raw = self._next_raw()
            if raw is None:
                self.exhausted = True
                break
            enc = self._encode(raw, self.drops)
            if enc is not None:
                self.packer.add(enc)
        return self.packer.pop_pack() or None

    def state(self) -> dict:
        return {
            "stream": self.id,
            "epoch": self.epoch,
            "pos": self.pos,
            "offset": self.offset,
            "samples_read": self.samples_read,
            "exhausted": self.exhausted,
            "drops": self.drops.state(),
            "packer": self.packer.state(),
        }

    def load(self, state: dict) -> None:
        if state["stream"] != self.id:
            raise UserError(f"loader state is for stream {state['stream']}, not {self.id}")
        self.epoch, self.pos, self.offset = state["epoch"], state["pos"], state["offset"]
        self.samples_read, self.exhausted = state["samples_read"], state["exhausted"]
        self.drops.load(state["drops"])
        self._it = None

        def fetch(shard: int, offset: int) -> EncodedSample:
            raw = read_group(self.data.shard_path(shard), shard, offset)
            enc = self._encode(raw, DropCounter())
            if enc is None:
                raise UserError(f"sample {raw.key} in the saved packer buffer no longer encodes")
            return enc

        self.packer.load(state["packer"], fetch)

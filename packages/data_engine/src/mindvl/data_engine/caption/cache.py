"""A persistent cache of generated captions, shared by reruns, resumes and recipes.

Layout: ``work_dir/caption_cache/part-<writer>.jsonl``, one append-only file per writer
(each Ray actor is one writer), one line ``{"k": key, "t": text}`` per generated caption.
Writers never share a file, so concurrent actors need no locks and the directory can sit
on a shared filesystem; a crash leaves at most a torn last line, which loading skips.
Loading reads every part, so a rerun, a resumed build or another recipe over the same
images finds everything finished before it started. Entries written by another actor
*during* the same run are not seen (that costs a duplicate generation, not a wrong one).

The key covers everything that changes the output: the image bytes' sha256, the model
(id and weights digest), the rendered prompt and the generation parameters. The RAW model
output is stored; acceptance checks run on every read, so recipes with different checks
share entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import uuid
from pathlib import Path
from typing import Any

CACHE_DIR = "caption_cache"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def generation_json(generation: dict[str, Any]) -> str:
    return json.dumps(generation, sort_keys=True, separators=(",", ":"))


def cache_key(
    image_sha256: str, model_id: str, weights_digest: str, prompt: str, generation: dict[str, Any]
) -> str:
    parts = [
        image_sha256,
        model_id,
        weights_digest,
        sha256_text(prompt),
        generation_json(generation),
    ]
    return sha256_text("\x00".join(parts))


class CaptionCache:
    def __init__(self, directory: str | Path, writer: str | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, str] = {}
        for part in sorted(self.directory.glob("part-*.jsonl")):
            self._load(part)
        name = writer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = self.directory / f"part-{name}.jsonl"
        self._file = None

    def _load(self, part: Path) -> None:
        with part.open("rb") as fh:
            for line in fh:
                try:
                    row = json.loads(line)
                    self.entries[row["k"]] = row["t"]
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line from a crashed writer

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def put_many(self, items: dict[str, str]) -> None:
        """Record finished captions; flushed before returning, so a crash loses none."""
        if not items:
            return
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
        for key, text in items.items():
            self._file.write(json.dumps({"k": key, "t": text}, ensure_ascii=False) + "\n")
        self._file.flush()
        self.entries.update(items)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

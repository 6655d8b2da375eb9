"""A scratch file for image bytes between reading the staging files and writing shards.

Staging is read once, batch by batch; each kept sample's encoded images are appended here
and only their (offset, length) stay in memory, so the mixer's memory holds sample
records, not pixels, however big the stage. The file is scratch: rebuilt on every run and
removed at the end.
"""

from __future__ import annotations

import os
from pathlib import Path

SPILL_NAME = ".mix-images.spill"


class ImageSpill:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._f = open(path, "w+b")  # noqa: SIM115 - lives as long as the spill
        self._end = 0

    def append(self, data: bytes) -> tuple[int, int]:
        self._f.write(data)
        span = (self._end, len(data))
        self._end += len(data)
        return span

    def read(self, span: tuple[int, int]) -> bytes:
        self._f.flush()
        return os.pread(self._f.fileno(), span[1], span[0])

    def close(self) -> None:
        self._f.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> ImageSpill:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

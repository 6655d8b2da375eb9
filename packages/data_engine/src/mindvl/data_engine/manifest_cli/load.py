"""Finding a manifest from what a user typed: the file itself or the build directory."""

from __future__ import annotations

from pathlib import Path

from mindvl.common.manifest import MANIFEST_NAME, RatioManifest


def load(path: str | Path) -> tuple[RatioManifest, Path]:
    """The manifest and the directory its shards and index live in."""
    p = Path(path)
    file = p / MANIFEST_NAME if p.is_dir() else p
    return RatioManifest.load(file), file.parent

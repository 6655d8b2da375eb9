"""Digests that pin a build to its code and tokenizer (recorded in the manifest)."""

from __future__ import annotations

import hashlib
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mindvl.common.errors import UserError
from mindvl.common.manifest import TokenizerRecord


@lru_cache(maxsize=1)
def code_version() -> str:
    """``mindvl-data-engine <version>``, plus ``git describe`` when run from a checkout."""
    try:
        v = version("mindvl-data-engine")
    except PackageNotFoundError:
        v = "unknown"
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            return f"{v}+git.{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return v


def tokenizer_record(path: str) -> TokenizerRecord:
    """sha256 over the tokenizer's files (relative names and contents, sorted)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"tokenizer not found: {path}")
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for f in files:
        rel = f.name if p.is_file() else f.relative_to(p).as_posix()
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return TokenizerRecord(path=path, digest=h.hexdigest())

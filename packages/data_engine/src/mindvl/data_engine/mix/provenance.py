"""Digests that pin a build to its code and tokenizer (recorded in the manifest)."""

from __future__ import annotations

import hashlib
import importlib
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mindvl.common.errors import UserError
from mindvl.common.manifest import TokenizerRecord

SOURCE_PACKAGES = ("common", "data_engine")  # the code a build runs (mindvl.<name>)


@lru_cache(maxsize=1)
def source_digest() -> str:
    """sha256 over the build code's files (relative names and contents, sorted): the same
    code gives the same digest in a checkout, an installed wheel or a Ray job's copy."""
    h = hashlib.sha256()
    for pkg in SOURCE_PACKAGES:
        base = Path(importlib.import_module(f"mindvl.{pkg}").__file__).parent
        files = sorted(
            f
            for f in base.rglob("*")
            if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".pyc", ".pyo")
        )
        for f in files:
            h.update(f"{pkg}/{f.relative_to(base).as_posix()}".encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _git_describe() -> str | None:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<version>+src.<digest>`` (the installed version and :func:`source_digest`'s first
    16 hex digits), with ``.git.<describe>`` appended when run from a git checkout. The
    source digest is there also when no ``.git`` is (a Ray job's working dir, a wheel)."""
    try:
        v = version("mindvl-data-engine")
    except PackageNotFoundError:
        v = "unknown"
    out = f"{v}+src.{source_digest()[:16]}"
    git = _git_describe()
    return f"{out}.git.{git}" if git else out


def same_code(a: str, b: str) -> bool:
    """Whether two recorded code versions name the same code: by source digest when both
    carry one (a checkout and a Ray job of one commit agree), else by the whole string."""
    da, db = _source_part(a), _source_part(b)
    return da == db if da and db else a == b


def _source_part(version_text: str) -> str | None:
    _, sep, rest = version_text.partition("+src.")
    return rest.split(".", 1)[0] if sep else None


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

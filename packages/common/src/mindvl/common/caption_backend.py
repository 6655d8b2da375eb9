"""The caption backend interface between the data engine (caller) and model providers.

Backends register under the ``mindvl.caption_backends`` entry-point group, so the data
engine can caption with a checkpoint written by the trainer without importing the trainer.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from mindvl.common.errors import UserError

ENTRY_POINT_GROUP = "mindvl.caption_backends"


@runtime_checkable
class CaptionBackend(Protocol):
    """Created once per actor: ``Backend(model_path, device)``; ``device`` is cpu|cuda|npu."""

    model_id: str
    weights_digest: str  # sha256 over the weight files, for caption provenance and caching

    def generate(
        self, images: list[bytes], prompts: list[str], generation: dict[str, Any]
    ) -> list[str]:
        """One caption per (encoded image, prompt) pair, in order; batched inside."""
        ...


def backend_class(name: str) -> type:
    eps = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if name not in eps:
        raise UserError(
            f"unknown caption backend {name!r} (installed: {', '.join(sorted(eps)) or 'none'})"
        )
    return eps[name].load()


def weights_digest(model_dir: str | Path) -> str:
    """sha256 over a checkpoint's ``*.safetensors`` files (names and bytes, sorted): the one
    definition every backend uses, so caption provenance and caches mean the same thing."""
    h = hashlib.sha256()
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise UserError(f"no *.safetensors files in {model_dir}")
    for f in files:
        h.update(f.name.encode() + b"\x00")
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()

"""Where a checkpoint came from: ``provenance.json`` next to its weights.

``id`` is the sha256 of ``model.safetensors`` (of a sharded model dir: the sha256 of its
shards' sha256s, in file order); ``ancestors`` lists the ids of every
checkpoint it was initialised from, nearest first. Averaging uses it to refuse checkpoints
that do not share an ancestor.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mindvl.common.manifest import sha256_file
from mindvl.trainer.model.weights_dir import weight_files

PROVENANCE_NAME = "provenance.json"


def checkpoint_id(path: str | Path) -> str:
    files = weight_files(path)
    if len(files) == 1:
        return sha256_file(files[0])
    return hashlib.sha256("".join(sha256_file(f) for f in files).encode()).hexdigest()


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    p = Path(path) / PROVENANCE_NAME
    if not p.is_file():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def write_provenance(
    path: str | Path, parent: str | Path | None = None, **details: Any
) -> dict[str, Any]:
    """Record this checkpoint's id, its parent's lineage and free-form ``details``."""
    ancestors: list[str] = []
    if parent is not None:
        parent_prov = read_provenance(parent) or {}
        ancestors = [
            parent_prov.get("id") or checkpoint_id(parent),
            *parent_prov.get("ancestors", []),
        ]
    record = {"id": checkpoint_id(path), "ancestors": ancestors, **details}
    (Path(path) / PROVENANCE_NAME).write_text(
        json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return record

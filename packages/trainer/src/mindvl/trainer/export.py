"""A step checkpoint's sharded weights -> a model dir (``mindvl ckpt export``, and the
``OUT/model`` a stage ends with).

DCP's safetensors consolidation reads every rank's pieces of one tensor at a time and writes
the whole tensor into its output file, so no process ever holds the full model. Output
files are filled in name order up to ``max_shard_bytes`` each; one file is written as plain
``model.safetensors``, several as ``model-0000i-of-0000N.safetensors`` with
``model.safetensors.index.json`` (:mod:`mindvl.trainer.model.weights_dir`). A tied
embedding is written once, under safetensors' name for it. The model dir gets a
``provenance.json`` whose parent is the stage's ``init.checkpoint``, so exported step
checkpoints of one lineage can be averaged.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from mindvl.common.errors import UserError
from mindvl.trainer.checkpoint import MODEL_SHARDS, check_layout_version
from mindvl.trainer.model.checkpoint_io import TOKENIZER_FILES, default_mode
from mindvl.trainer.model.config import CONFIG_NAME, INFERENCE_NAME, WEIGHTS_NAME
from mindvl.trainer.model.weights_dir import INDEX_NAME
from mindvl.trainer.provenance import write_provenance

DEFAULT_MAX_SHARD = 5 * 1024**3
_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}  # fmt: skip


def parse_size(text: str) -> int:
    """``5GB``, ``500MiB``, ``1000000`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise UserError(f"not a size: {text!r} (e.g. 5GB, 500MiB or a number of bytes)")
    size = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    if size <= 0:
        raise UserError(f"size must be positive: {text!r}")
    return size


def _tensor_sizes(shards: Path) -> dict[str, int]:
    """Full-tensor byte sizes of the checkpoint's model, from the shards' headers."""
    from safetensors import safe_open
    from torch.distributed.checkpoint._hf_utils import CUSTOM_METADATA_KEY, SAVED_OFFSETS_KEY

    ends: dict[str, list[int]] = {}
    itemsize: dict[str, int] = {}
    for file in sorted(shards.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            info = json.loads((f.metadata() or {}).get(CUSTOM_METADATA_KEY, "{}"))
            for key in f.keys():  # noqa: SIM118
                sl = f.get_slice(key)
                shape = sl.get_shape()
                offset = info.get(key, {}).get(SAVED_OFFSETS_KEY, [0] * len(shape))
                end = [o + s for o, s in zip(offset, shape, strict=True)]
                ends[key] = [max(a, b) for a, b in zip(ends.get(key, end), end, strict=True)]
                itemsize[key] = _itemsize(sl.get_dtype())
    out = {}
    for key, shape in ends.items():
        n = 1
        for d in shape:
            n *= d
        out[key] = n * itemsize[key]
    return out


def _itemsize(dtype: str) -> int:
    import torch
    from safetensors.torch import _getdtype

    return torch.empty(0, dtype=_getdtype(dtype)).element_size()


def export_checkpoint(ckpt: Path, out: Path, max_shard_bytes: int = DEFAULT_MAX_SHARD) -> Path:
    """Write the model dir of step checkpoint ``ckpt`` to ``out`` (weights, config,
    tokenizer, inference rule)."""
    from torch.distributed.checkpoint._consolidate_hf_safetensors import (
        consolidate_safetensors_files,
    )

    ckpt, out = Path(ckpt), Path(out)
    check_layout_version(ckpt)
    sizes = _tensor_sizes(ckpt / MODEL_SHARDS)  # a tied embedding is saved once
    index, used, mapping = 1, 0, {}
    for key in sorted(sizes):
        if used and used + sizes[key] > max_shard_bytes:
            index, used = index + 1, 0
        mapping[key] = index
        used += sizes[key]
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("model*.safetensors"), out / INDEX_NAME]:
        old.unlink(missing_ok=True)
    consolidate_safetensors_files(str(ckpt / MODEL_SHARDS), str(out), mapping)
    if index == 1:  # one file: the plain layout every reader knows
        (out / "model-00001-of-00001.safetensors").replace(out / WEIGHTS_NAME)
        (out / INDEX_NAME).unlink()
    default_mode(*out.glob("*.safetensors"))
    for name in (CONFIG_NAME, INFERENCE_NAME, *TOKENIZER_FILES):
        if (ckpt / name).exists():
            shutil.copyfile(ckpt / name, out / name)
    trainer = json.loads((ckpt / "trainer.json").read_text())
    parent = trainer.get("init_checkpoint")
    write_provenance(
        out, parent=parent if parent and Path(parent).is_dir() else None,
        stage=trainer.get("stage"),
        trained={"steps": trainer["step"], "tokens_seen": trainer["tokens_seen"]},
    )  # fmt: skip
    return out

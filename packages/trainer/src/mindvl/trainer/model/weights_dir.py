"""The weights of a model dir: one ``model.safetensors``, or shards with an index.

A small model is one ``model.safetensors`` (safetensors' ``save_model``: a tied input/output
embedding stored once). Above a size (``mindvl ckpt export --max-shard-size``) the weights
are ``model-0000i-of-0000N.safetensors`` plus ``model.safetensors.index.json`` mapping each
tensor name to its file, as Hugging Face writes them. Everything that reads a model dir's
weights (loading, sharded per-rank loading, averaging, provenance ids) goes through
:func:`weight_map`, so both forms are read everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mindvl.common.errors import UserError
from mindvl.trainer.model.config import WEIGHTS_NAME

INDEX_NAME = "model.safetensors.index.json"


def weight_map(path) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it."""
    from safetensors import safe_open

    path = Path(path)
    index = path / INDEX_NAME
    if index.is_file():
        try:
            entries = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise UserError(f"{index} is not a safetensors index ({err})") from None
        files = {name: path / file for name, file in entries.items()}
        missing = sorted({str(f) for f in files.values() if not f.is_file()})
        if missing:
            raise UserError(f"{index} names missing files: {', '.join(missing[:3])}")
        return files
    single = path / WEIGHTS_NAME
    if not single.is_file() and (path / "model-shards").is_dir():
        raise UserError(
            f"{path} is a sharded training checkpoint: make a model dir of it with"
            f" `mindvl ckpt export {path} -o DIR`"
        )
    if not single.is_file():
        raise UserError(f"checkpoint has no {WEIGHTS_NAME} or {INDEX_NAME}: {path}")
    with safe_open(str(single), framework="pt") as f:
        return dict.fromkeys(f.keys(), single)  # noqa: SIM118 (safe_open is not a mapping)


def weight_files(path) -> list[Path]:
    """The weight files of a model dir, sorted (for content ids)."""
    return sorted(set(weight_map(path).values()))


def tied_aliases(model: torch.nn.Module) -> dict[str, str]:
    """Parameter name -> the name it is stored under, for names sharing one tensor.

    safetensors' rule: of the names of one tensor, the alphabetically first is stored.
    """
    groups: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(name)
    out = {}
    for names in groups.values():
        kept = sorted(names)[0]
        out.update({n: kept for n in names if n != kept})
    return out


def load_weights(model: torch.nn.Module, path, device: str = "cpu") -> None:
    """Load a model dir's weights into ``model`` strictly (tied names may be stored once)."""
    from safetensors import safe_open

    files = weight_map(path)
    aliases = tied_aliases(model)
    expected = set(model.state_dict()) - set(aliases)
    missing, unexpected = sorted(expected - set(files)), sorted(set(files) - expected)
    if missing or unexpected:
        raise UserError(
            f"weights in {path} do not fit the model: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    for file in sorted(set(files.values())):
        with safe_open(str(file), framework="pt", device=device) as f:
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        model.load_state_dict(state, strict=False)
        del state

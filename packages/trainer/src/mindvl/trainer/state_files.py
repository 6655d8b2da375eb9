"""Nested training state (optimizer, scheduler, RNG) as safetensors + JSON, never pickle.

A checkpoint copied from elsewhere must not be able to run code when it is resumed, so
state is stored as two files per object: ``{stem}.safetensors`` holds every tensor or
numpy array, ``{stem}.json`` holds the structure with the plain values (numbers, strings,
booleans, None) and references to the tensors by name. Tuples, dicts with non-string keys
and arrays are tagged so that loading gives back the same Python types. Anything else
(an arbitrary object) is refused at save time rather than pickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mindvl.common.errors import UserError

FORMAT = "mindvl-state/1"
_TAGS = ("__tensor__", "__ndarray__", "__tuple__", "__items__")


def _encode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(obj, torch.Tensor):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray):
        # stored as raw bytes: safetensors lacks some numpy dtypes (numpy's RNG is uint32)
        name = f"t{len(tensors)}"
        raw = np.frombuffer(np.ascontiguousarray(obj).tobytes(), dtype=np.uint8)
        tensors[name] = torch.from_numpy(raw.copy())
        return {"__ndarray__": name, "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in _TAGS for k in obj):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        return {
            "__items__": [
                [_encode(k, tensors, where), _encode(v, tensors, f"{where}.{k}")]
                for k, v in obj.items()
            ]
        }
    raise TypeError(f"{where}: {type(obj).__name__} cannot be saved without pickle")


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        raw = tensors[obj["__ndarray__"]].numpy().tobytes()
        return np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def save_state(obj: Any, folder: Path, stem: str) -> None:
    """Write ``obj`` as ``folder/{stem}.safetensors`` + ``folder/{stem}.json``."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    tree = _encode(obj, tensors, stem)
    save_file(tensors, str(folder / f"{stem}.safetensors"), metadata={"format": FORMAT})
    text = json.dumps({"format": FORMAT, "state": tree}, sort_keys=True)
    tmp = folder / f"{stem}.json.tmp{os.getpid()}"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(folder / f"{stem}.json")


def load_state(folder: Path, stem: str) -> Any:
    """Read what :func:`save_state` wrote; any other file content is a one-line error."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    meta, data = folder / f"{stem}.json", folder / f"{stem}.safetensors"
    for p in (meta, data):
        if not p.is_file():
            raise UserError(f"checkpoint {folder}: {p.name} is missing")
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"checkpoint {folder}: {meta.name} is not JSON ({err})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UserError(f"checkpoint {folder}: {meta.name} is not a {FORMAT} state file")
    try:
        tensors = load_file(str(data))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(
            f"checkpoint {folder}: {data.name} is not a safetensors file ({err})"
        ) from None
    try:
        return _decode(doc["state"], tensors)
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(
            f"checkpoint {folder}: {meta.name} does not match {data.name} ({err})"
        ) from None

"""Weight averaging of checkpoints that share an ancestor but were trained differently
(MindVL averages multitask checkpoints trained at different sequence lengths).

Works tensor by tensor on the safetensors files (one file or index + shards), so memory is
one output weight file plus one tensor per input. Floating tensors are averaged in fp32 and cast back; integer and bool
tensors (and buffers stored as such) must be identical across inputs. Tied embeddings are
stored once by safetensors' ``save_model`` and so are averaged once and re-tied on load.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from mindvl.common.errors import UserError
from mindvl.trainer.model.checkpoint_io import TOKENIZER_FILES, default_mode, read_config
from mindvl.trainer.model.config import CONFIG_NAME, INFERENCE_NAME
from mindvl.trainer.model.weights_dir import INDEX_NAME, weight_map
from mindvl.trainer.provenance import PROVENANCE_NAME, checkpoint_id, read_provenance


def _config_diff(a: dict, b: dict, prefix: str = "") -> str | None:
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            found = _config_diff(va, vb, f"{prefix}{key}.")
            if found:
                return found
        elif va != vb:
            return f"{prefix}{key}: {va!r} vs {vb!r}"
    return None


def check_compatible(paths: list[Path], check_lineage: bool = True) -> list[dict | None]:
    """Refuse the same checkpoint twice, mismatched architectures and unrelated lineages,
    naming what differs."""
    ids: dict[str, Path] = {}
    for p in paths:
        same = ids.setdefault(checkpoint_id(p), p)
        if same is not p:
            raise UserError(
                f"{same} and {p} are the same checkpoint (identical weights): "
                "averaging needs different checkpoints"
            )
    first = read_config(paths[0]).model_dump(exclude={"dtype"})
    for p in paths[1:]:
        diff = _config_diff(first, read_config(p).model_dump(exclude={"dtype"}))
        if diff:
            raise UserError(f"cannot average {paths[0]} and {p}: architectures differ at {diff}")
    provs = [read_provenance(p) for p in paths]
    if check_lineage:
        missing = [str(p) for p, pr in zip(paths, provs, strict=True) if pr is None]
        if missing:
            raise UserError(
                f"no {PROVENANCE_NAME} in {', '.join(missing)}: lineage unknown (use --no-lineage-check to average anyway)"
            )
        shared = set(provs[0]["ancestors"]).intersection(
            *(set(pr["ancestors"]) for pr in provs[1:])
        )
        if not shared:
            raise UserError(
                f"checkpoints {', '.join(map(str, paths))} share no ancestor; averaging unrelated models is refused"
            )
    return provs


def _read(file: Path, key: str) -> torch.Tensor:
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        return f.get_tensor(key)


def _average(key: str, tensors: list[torch.Tensor], norm: list[float]) -> torch.Tensor:
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise UserError(f"cannot average: {key} has shapes {sorted(shapes)}")
    if tensors[0].is_floating_point():
        acc = sum(w * t.to(torch.float32) for w, t in zip(norm, tensors, strict=True))
        return acc.to(tensors[0].dtype).contiguous()
    if any(not torch.equal(tensors[0], t) for t in tensors[1:]):
        raise UserError(f"cannot average: non-floating tensor {key} differs between checkpoints")
    return tensors[0]


def average_checkpoints(
    paths: list[str | Path],
    out: str | Path,
    weights: list[float] | None = None,
    check_lineage: bool = True,
) -> dict:
    from safetensors import safe_open
    from safetensors.torch import save_file

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise UserError("averaging needs at least two checkpoints")
    if weights is None:
        weights = [1.0] * len(paths)
    if len(weights) != len(paths) or any(w <= 0 for w in weights):
        raise UserError(f"--weights needs {len(paths)} positive numbers, got {weights}")
    norm = [w / sum(weights) for w in weights]
    provs = check_compatible(paths, check_lineage)

    maps = [weight_map(p) for p in paths]
    keys = sorted(maps[0])
    for p, m in zip(paths[1:], maps[1:], strict=True):
        if sorted(m) != keys:
            extra = sorted(set(m) ^ set(keys))[:3]
            raise UserError(f"cannot average {paths[0]} and {p}: tensor names differ ({extra})")
    dst = Path(out)
    dst.mkdir(parents=True, exist_ok=True)
    # the output keeps the first input's file layout: one file, or its shards + index
    for file in sorted(set(maps[0].values())):
        names = [k for k in keys if maps[0][k] == file]
        with safe_open(str(file), framework="pt") as f:
            metadata = f.metadata() or {"format": "pt"}
        averaged = {k: _average(k, [_read(m[k], k) for m in maps], norm) for k in names}
        tmp = dst / (file.name + ".tmp")
        save_file(averaged, str(tmp), metadata=metadata)
        default_mode(tmp)
        tmp.replace(dst / file.name)
    if (paths[0] / INDEX_NAME).is_file():
        shutil.copyfile(paths[0] / INDEX_NAME, dst / INDEX_NAME)
    for name in (CONFIG_NAME, INFERENCE_NAME, *TOKENIZER_FILES):
        if (paths[0] / name).exists():
            shutil.copyfile(paths[0] / name, dst / name)
    inputs = [
        {
            "path": str(p),
            "id": (pr or {}).get("id") or checkpoint_id(p),
            "weight": w,
            "trained": (pr or {}).get("trained"),
        }
        for p, pr, w in zip(paths, provs, norm, strict=True)
    ]
    ancestors = sorted(set().union(*(set((pr or {}).get("ancestors", [])) for pr in provs)))
    record = {
        "id": checkpoint_id(dst),
        "ancestors": [i["id"] for i in inputs] + ancestors,
        "averaged_from": inputs,
        "stage": "average",
    }
    (dst / PROVENANCE_NAME).write_text(
        json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return record

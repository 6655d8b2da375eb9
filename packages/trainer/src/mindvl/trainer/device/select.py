"""Pick the device and the distributed backend: NPU > CUDA > CPU, unless overridden.

torch_npu is never imported at module import time: with torch_npu installed but no CANN
toolkit a plain ``import torch`` fails unless ``TORCH_DEVICE_BACKEND_AUTOLOAD=0`` is set
(torch auto-loads device backends). We only try ``import torch_npu`` when asked to look for
an NPU, and treat any failure there as "no NPU".
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from mindvl.common.errors import UserError

DEVICE_TYPES = ("npu", "cuda", "cpu")
DIST_BACKENDS = {"npu": "hccl", "cuda": "nccl", "cpu": "gloo"}


def npu_available() -> bool:
    try:
        import torch_npu  # noqa: F401
    except Exception:  # ImportError, or the CANN runtime failing to load
        return False
    npu = getattr(torch, "npu", None)
    return bool(npu is not None and npu.is_available())


@dataclass(frozen=True)
class DeviceChoice:
    type: str  # npu | cuda | cpu
    dist_backend: str  # hccl | nccl | gloo

    def device(self, local_rank: int = 0) -> torch.device:
        return torch.device("cpu") if self.type == "cpu" else torch.device(self.type, local_rank)


def select_device(override: str | None = None) -> DeviceChoice:
    """``override`` (or ``MINDVL_DEVICE``) forces cpu|cuda|npu; otherwise the best available."""
    wanted = override or os.environ.get("MINDVL_DEVICE") or "auto"
    if wanted not in (*DEVICE_TYPES, "auto"):
        raise UserError(f"unknown device {wanted!r} (choose from auto, {', '.join(DEVICE_TYPES)})")
    if wanted == "auto":
        if npu_available():
            wanted = "npu"
        elif torch.cuda.is_available():
            wanted = "cuda"
        else:
            wanted = "cpu"
    elif wanted == "npu" and not npu_available():
        raise UserError("device 'npu' requested but torch_npu/CANN is not usable here")
    elif wanted == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' requested but CUDA is not available")
    return DeviceChoice(type=wanted, dist_backend=DIST_BACKENDS[wanted])


def set_local_device(choice: DeviceChoice, local_rank: int) -> torch.device:
    """Bind this process to its accelerator (``torch.cuda/npu.set_device``)."""
    dev = choice.device(local_rank)
    if choice.type == "cuda":
        torch.cuda.set_device(dev)
    elif choice.type == "npu":
        torch.npu.set_device(dev)
    return dev

"""Which accelerator a caption actor uses, and the Ray resources that reserve it.

Kept apart from the backends so model code stays single-device: a backend is told
``cpu``, ``cuda`` or ``npu`` and never probes hardware itself. NPU comes first because a
machine with Ascend cards and torch_npu installed has no CUDA, and ``transfer_to_npu``
style monkeypatching is avoided on purpose.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda", "npu")
MODELS_HINT = (
    "pip install 'mindvl-data-engine[models]' (in this repository: uv sync, which installs"
    " the whole workspace, or uv sync --package mindvl-data-engine --extra models)"
)


def require_torch(what: str) -> None:
    """Fail with an install hint where a model operator runs without torch installed
    (torch is the data engine's ``models`` extra: CPU-only data nodes go without it)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        from mindvl.common.errors import UserError

        raise UserError(
            f"{what} runs a model and needs torch, not installed here: {MODELS_HINT}"
        ) from None


def npu_available() -> bool:
    try:
        import torch
        import torch_npu  # noqa: F401  (registers torch.npu)
    except Exception:  # not installed, or installed without the CANN toolkit
        return False
    try:
        return bool(torch.npu.is_available())
    except Exception:
        return False


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pick_device(requested: str = "auto") -> str:
    """``requested`` unless it is ``auto``: then NPU, then CUDA, then CPU."""
    if requested != "auto":
        if requested not in DEVICES:
            raise ValueError(f"unknown device {requested!r} (allowed: auto, {', '.join(DEVICES)})")
        return requested
    if npu_available():
        return "npu"
    if cuda_available():
        return "cuda"
    return "cpu"


def pick_cluster_device(requested: str, cluster_resources: dict[str, float]) -> str:
    """Like :func:`pick_device`, but from what a Ray cluster offers, not this process.

    The driver often runs on a CPU-only head node while the workers hold the accelerators,
    so ``auto`` looks at ``ray.cluster_resources()`` instead of probing locally.
    """
    if requested != "auto":
        return pick_device(requested)
    if cluster_resources.get("NPU", 0) >= 1:
        return "npu"
    if cluster_resources.get("GPU", 0) >= 1:
        return "cuda"
    return "cpu"


def actor_resources(device: str) -> dict[str, Any]:
    """Keyword arguments for ``map_batches`` that give each actor one accelerator.

    ``NPU`` is a custom Ray resource: start Ray nodes with ``--resources '{"NPU": 8}'``.
    """
    if device == "cuda":
        return {"num_gpus": 1}
    if device == "npu":
        return {"resources": {"NPU": 1}}
    return {"num_cpus": 1}

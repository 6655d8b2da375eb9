"""Process-group and device set-up for one training process (plain, or under ``torchrun``).

A minimal adapter for the loop: it picks the device (NPU > CUDA > CPU unless the stage
names one), initialises ``torch.distributed`` with the matching backend (hccl / nccl /
gloo) when ``WORLD_SIZE`` > 1, and wraps the model for the stage's strategy. The device
layer (:mod:`mindvl.trainer.device`) owns attention backends; wrapping lives here until
that layer provides it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from mindvl.common.errors import UserError

BACKENDS = {"npu": "hccl", "cuda": "nccl", "cpu": "gloo"}


@dataclass
class Runtime:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def close(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _npu_available() -> bool:
    try:
        import torch_npu  # noqa: F401
    except ImportError:
        return False
    return torch.npu.is_available()


def pick_device(preference: str, local_rank: int) -> torch.device:
    if preference == "auto":
        preference = "npu" if _npu_available() else "cuda" if torch.cuda.is_available() else "cpu"
    if preference == "npu" and not _npu_available():
        raise UserError("device: npu requested but torch_npu/CANN is not available")
    if preference == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda requested but no CUDA device is visible")
    if preference == "cpu":
        return torch.device("cpu")
    return torch.device(preference, local_rank)


def start_runtime(preference: str) -> Runtime:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    device = pick_device(preference, local_rank)
    if device.type != "cpu":
        getattr(torch, device.type).set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(BACKENDS[device.type], rank=rank, world_size=world)
    return Runtime(rank, world, local_rank, device)


def wrap_model(model: torch.nn.Module, strategy: str, rt: Runtime) -> torch.nn.Module:
    """``none`` -> the model; ``ddp`` -> DistributedDataParallel; ``fsdp`` -> FSDP2 per block."""
    if strategy == "none" or not rt.distributed:
        if strategy != "none" and rt.rank == 0:
            print(f"distributed: {strategy} ignored in a single process", flush=True)
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = None if rt.device.type == "cpu" else [rt.device.index]
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)
    from torch.distributed.fsdp import fully_shard

    for module in model.modules():  # one FSDP unit per transformer block, then the root
        if type(module).__name__.endswith(("DecoderLayer", "VisionBlock")):
            fully_shard(module)
    fully_shard(model)
    return model

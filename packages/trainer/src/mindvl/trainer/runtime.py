"""Process-group set-up for one training process (plain, or under ``torchrun``).

Device choice (NPU > CUDA > CPU) and wrapping (DDP / FSDP2) are the device layer's
(:mod:`mindvl.trainer.device.select`, :mod:`mindvl.trainer.device.parallel`); this module
joins the process group with the matching backend (hccl / nccl / gloo) when
``WORLD_SIZE`` > 1 and gives the loop its small all-reduce.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from mindvl.trainer.device.select import select_device, set_local_device


@dataclass
class Runtime:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def all_reduce_sum(self, values: list[float], group=None) -> list[float]:
        """Sum over ``group`` (a ProcessGroup or a 1-D DeviceMesh; default all ranks)."""
        if not self.distributed:
            return list(values)
        if hasattr(group, "get_group"):
            group = group.get_group()
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t, group=group)
        return t.tolist()

    def close(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def start_runtime(preference: str) -> Runtime:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    choice = select_device(None if preference == "auto" else preference)
    device = set_local_device(choice, local_rank)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(choice.dist_backend, rank=rank, world_size=world)
    return Runtime(rank, world, local_rank, device)

"""The training DeviceMesh and the stage config's ``parallel:`` block.

One mesh for every parallel dimension, torchtitan-style. Today it has data parallelism
(FSDP2 sharding over all ranks, ``dp_shard``) and expert parallelism (``ep``): the
experts of every MoE layer are split over ``ep`` ranks, and each expert is FSDP2-sharded
over the ``dp_shard_mod_ep`` ranks that hold the same experts. Expert parallelism borrows
its ranks from data parallelism: every rank still reads its own samples.

Rank ``r`` sits at ``(r // ep, r % ep)`` of the 2-D mesh ``(dp_shard_mod_ep, ep)``;
``dp_shard`` is the two dimensions flattened (all ranks). Further dimensions (tp, cp, pp,
dp_replicate) join as more named dimensions of the same mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mindvl.common.errors import UserError


@dataclass(frozen=True)
class MeshLayout:
    world: int
    ep: int = 1

    @property
    def dp_shard_mod_ep(self) -> int:
        return self.world // self.ep


def check_layout(world: int, ep: int, strategy: str, num_experts: int | None) -> MeshLayout:
    """Validate a layout before any work; every problem is a one-line UserError."""
    if ep < 1:
        raise UserError(f"parallel.ep must be >= 1, got {ep}")
    if world % ep:
        raise UserError(f"parallel.ep = {ep} does not divide the {world} ranks")
    if ep > 1:
        if strategy != "fsdp":
            raise UserError(f"parallel.ep = {ep} needs distributed: fsdp (got {strategy})")
        if num_experts is None:
            raise UserError(f"parallel.ep = {ep} needs a mixture-of-experts LLM; this one is dense")
        if num_experts % ep:
            raise UserError(f"parallel.ep = {ep} does not divide the {num_experts} routed experts")
    return MeshLayout(world, ep)


def build_mesh(device_type: str, layout: MeshLayout):
    """The (dp_shard_mod_ep, ep) mesh with ``dp_shard`` (all ranks) flattened from it."""
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(
        device_type, (layout.dp_shard_mod_ep, layout.ep), mesh_dim_names=("dp_shard_mod_ep", "ep")
    )
    mesh[("dp_shard_mod_ep", "ep")]._flatten("dp_shard")
    return mesh


def world_mesh(device_type: str):
    """A 1-D mesh of all ranks (plain FSDP2, no expert parallelism)."""
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(
        device_type, (torch.distributed.get_world_size(),), mesh_dim_names=("dp_shard",)
    )

"""The global gradient norm, and clipping to it, for parameters on any mix of meshes.

One rule for every layout (one process, DDP, FSDP2/HSDP, TP, EP): gradients are grouped by
mesh and placements, DTensor gives each group's norm over exactly the ranks that hold
distinct pieces of it, and groups whose pieces are also spread over ranks their DTensor
does not know of (expert-parallel slices) sum their squared norm over those ranks too.
"""

from __future__ import annotations

import torch


def clip_grad_norm_by_mesh(
    params: list[torch.Tensor], max_norm: float | None, also_over: dict[int, object] | None = None
) -> float:
    """Clip to ``max_norm`` (None: only measure) the gradients of parameters that may live
    on different meshes; returns the global norm.

    FSDP2 x TP leaves 2-D DTensors (``dp_shard_cp`` x ``tp``) next to 1-D ones (replicated
    over ``tp``), which torch's ``clip_grad_norm_`` cannot stack. Each group of one mesh and
    placement gets its norm from DTensor, which reduces over exactly the ranks holding
    distinct pieces (a parameter replicated over ``tp`` counts once). ``also_over`` maps a
    parameter's id to a process group holding further distinct pieces its DTensor does not
    know of (expert-parallel slices: the ``ep`` group); that group's squared norm is summed
    over it. The groups combine as a root of summed squares; the clip factor is torch's.
    """
    import torch.distributed as dist

    also_over = also_over or {}
    groups: dict[tuple, list[torch.Tensor]] = {}
    for p in params:
        spec = getattr(p.grad, "_spec", None)
        where = (spec.mesh, spec.placements) if spec is not None else (p.grad.device,)
        groups.setdefault((*where, also_over.get(id(p))), []).append(p.grad)
    sq = 0.0
    for key, grads in groups.items():  # the same order on every rank (parameter order)
        norm = torch.nn.utils.get_total_norm(grads)
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        part = norm.float().square()  # fp32: HCCL reduces it too
        if key[-1] is not None:
            dist.all_reduce(part, group=key[-1])
        sq += float(part)
    total = sq**0.5
    coef = min(max_norm / (total + 1e-6), 1.0) if max_norm else 1.0
    if coef < 1.0:
        for grads in groups.values():
            torch._foreach_mul_(grads, coef)
    return total

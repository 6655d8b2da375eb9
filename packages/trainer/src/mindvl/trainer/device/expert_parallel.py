"""Expert parallelism for transformers MoE blocks, applied from outside the model.

Each rank of an ``ep`` group keeps ``E / ep`` consecutive experts of every MoE layer (the
3-D ``gate_up_proj`` / ``down_proj`` tensors sliced on the expert dimension; parameter
names unchanged). The experts' forward becomes token dispatch and combine with
all-to-all (``torch.distributed.nn.functional.all_to_all_single``, differentiable; gloo,
NCCL and HCCL all have it):

1. sort the (token, k) assignments by expert; exchange per-expert counts;
2. all-to-all the token rows to the ranks owning their experts;
3. run each local expert on its rows (``act(x W_gate) * (x W_up)``, then ``W_down``, as
   transformers' experts do);
4. all-to-all the results back, weight them by the router and sum per token.

No token is dropped (no capacity factor), so EP=N computes what EP=1 computes. Checkpoints
see each expert weight as one DTensor of the full tensor (:func:`expert_checkpoint_view`):
every rank saves and loads only its own slice, and a checkpoint does not depend on ``ep``.
"""

from __future__ import annotations

import types

import torch
import torch.distributed as dist
from torch import nn

from mindvl.common.errors import UserError
from mindvl.trainer.model.moe import routed_expert_modules

EXPERT_WEIGHTS = ("gate_up_proj", "down_proj")


def _all_to_all(x: torch.Tensor, out_splits: list[int], in_splits: list[int], group):
    from torch.distributed.nn.functional import all_to_all_single

    out = x.new_empty((sum(out_splits), *x.shape[1:]))
    return all_to_all_single(out, x, out_splits, in_splits, group=group)


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; gradient times ``factor`` in backward."""

    @staticmethod
    def forward(ctx, x, factor: float):
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.factor, None


def _ep_forward(self, hidden_states, top_k_index, top_k_weights):
    group, ep, n_local = self._ep_group, self._ep_size, self._ep_local
    k = top_k_index.shape[-1]
    flat = top_k_index.reshape(-1)
    order = torch.argsort(flat, stable=True)
    rows = hidden_states[order // k]
    counts = torch.bincount(flat, minlength=n_local * ep)
    if counts.numel() != n_local * ep:
        raise RuntimeError(f"router picked expert {int(flat.max())} of {n_local * ep}")
    received = torch.empty_like(counts)
    dist.all_to_all_single(received, counts, group=group)  # (source rank, local expert)
    send = counts.view(ep, n_local).sum(1).tolist()
    recv_counts = received.view(ep, n_local)
    recv = recv_counts.sum(1).tolist()
    tokens = _all_to_all(rows, recv, send, group)
    expert_of = torch.arange(n_local, device=flat.device).repeat(ep)
    expert_of = torch.repeat_interleave(expert_of, recv_counts.reshape(-1))
    by_expert = torch.argsort(expert_of, stable=True)
    per_expert = recv_counts.sum(0).tolist()
    # an expert's gradient sums the tokens of its whole ep group; FSDP2 then averages over
    # the ranks holding its slice only, so 1/ep makes it the all-ranks mean like the rest
    # (FSDP2's own divide factor needs ReduceOp.PREMUL_SUM, which gloo and HCCL lack)
    gate_up = _ScaleGrad.apply(self.gate_up_proj, 1.0 / ep)
    down = _ScaleGrad.apply(self.down_proj, 1.0 / ep)
    outs = []
    for e, x in enumerate(tokens[by_expert].split(per_expert)):
        hidden = self._apply_gate(nn.functional.linear(x, gate_up[e]))  # act(gate) * up
        outs.append(nn.functional.linear(hidden, down[e]))
    computed = torch.cat(outs) if outs else tokens
    back = torch.empty_like(computed).index_copy(0, by_expert, computed)
    results = _all_to_all(back, send, recv, group)
    weighted = results * top_k_weights.reshape(-1)[order, None].to(results.dtype)
    out = torch.zeros_like(hidden_states)
    return out.index_add(0, order // k, weighted.to(out.dtype))


def shard_experts(llm: nn.Module, ep_mesh, ckpt_mesh=None) -> None:
    """Keep this rank's slice of every MoE layer's experts and route tokens by all-to-all.

    ``ckpt_mesh``: :func:`checkpoint_mesh` of the training mesh (for checkpoints)."""
    ep, rank = ep_mesh.size(), ep_mesh.get_local_rank()
    group = ep_mesh.get_group()
    for experts in routed_expert_modules(llm):
        names = sorted(n for n, _ in experts.named_parameters())
        layout_ok = not getattr(experts, "is_transposed", True) and hasattr(experts, "_apply_gate")
        if names != sorted(EXPERT_WEIGHTS) or not layout_ok:
            raise UserError(
                f"expert parallelism needs transformers' grouped experts (gate_up_proj,"
                f" down_proj, not transposed); {type(experts).__name__} has {names}"
            )
        total = experts.gate_up_proj.shape[0]
        n_local = total // ep
        for name in EXPERT_WEIGHTS:
            full = getattr(experts, name)
            local = full.detach()[rank * n_local : (rank + 1) * n_local].clone()
            setattr(experts, name, nn.Parameter(local, requires_grad=full.requires_grad))
        experts._ep_group, experts._ep_size, experts._ep_local = group, ep, n_local
        experts._ep_rank, experts._ep_ckpt_mesh = rank, ckpt_mesh
        experts.forward = types.MethodType(_ep_forward, experts)


def expert_parameter_names(model: nn.Module) -> dict[str, nn.Module]:
    """Fully qualified names of expert-parallel weights -> their experts module."""
    out = {}
    for name, module in model.named_modules():
        if hasattr(module, "_ep_group"):
            for w in EXPERT_WEIGHTS:
                out[f"{name}.{w}"] = module
    return out


CKPT_DIMS = ("ep", "dp_replicate", "dp_shard_mod_ep", "cp")


def checkpoint_mesh(mesh):
    """The (ep, dp_replicate, dp_shard_mod_ep, cp) view of the training mesh's
    (dp_replicate, dp_shard_mod_ep, ep, cp) dims, without process groups: expert weights
    are saved as DTensors on it (:func:`expert_checkpoint_view`), ep slices outer, each
    slice's FSDP2 pieces inside."""
    from torch.distributed.device_mesh import DeviceMesh

    return DeviceMesh(
        mesh.device_type,
        mesh.mesh.permute(2, 0, 1, 3).contiguous(),
        mesh_dim_names=CKPT_DIMS,
        _init_backend=False,
    )


def _global_view(t: torch.Tensor, module) -> torch.Tensor:
    """``t``, this rank's piece of an expert weight (its ep slice, as FSDP2 placed it on the
    ranks holding the slice: ``parallel._expert_mesh``), as a DTensor of the whole expert
    tensor, replicated over the dims its FSDP2 mesh does not span."""
    from torch.distributed.tensor import DTensor, Replicate, Shard

    placements = [Shard(0)] + [Replicate()] * (len(CKPT_DIMS) - 1)
    local = t
    if isinstance(t, DTensor):
        local = t.to_local()
        for name, placement in zip(t.device_mesh.mesh_dim_names, t.placements, strict=True):
            if name in CKPT_DIMS:
                placements[CKPT_DIMS.index(name)] = placement
            elif not placement.is_replicate():  # flattened dims only replicate a slice
                raise RuntimeError(f"expert weight sharded over flattened mesh dim {name}")
    shape = torch.Size((module._ep_local * module._ep_size, *t.shape[1:]))
    stride = torch.empty(shape, device="meta").stride()
    return DTensor.from_local(
        local, module._ep_ckpt_mesh, placements, run_check=False, shape=shape, stride=stride
    )


def expert_checkpoint_view(model: nn.Module, state: dict, optimizer: bool = False) -> dict:
    """``state`` (a sharded model or optimizer state dict) with every expert weight shown
    as a DTensor of the whole expert tensor: ep slices outer, FSDP2 shards inside each.

    The views share storage with ``state``'s tensors, so a checkpoint saved from them is
    independent of ``ep`` and loading into them fills the model in place; no rank ever
    holds another rank's experts.
    """
    from mindvl.trainer.device.state_names import plain_name

    # matched by plain name: module names carry wrapper prefixes that state dicts drop,
    # and state dicts of several stages per rank carry LocalStages' ``stages.N.``
    names = {plain_name(k): m for k, m in expert_parameter_names(model).items()}
    if not names:
        return state

    if not optimizer:
        return {
            k: v if (module := names.get(plain_name(k))) is None else _global_view(v, module)
            for k, v in state.items()
        }
    per_param = dict(state["state"])
    for key in sorted(per_param):
        module = names.get(plain_name(key))
        if module is not None:
            per_param[key] = {
                s: _global_view(v, module) if torch.is_tensor(v) and v.ndim > 0 else v
                for s, v in per_param[key].items()
            }
    return {**state, "state": per_param}

"""Tensor parallelism with sequence parallelism (Megatron-style) for a MindVL, applied from
outside the model with ``torch.distributed.tensor.parallel.parallelize_module``, before
FSDP2 (torchtitan's order). The packed row is one sequence (batch 1, sequence dim 1).

LLM, per decoder layer (``tp`` ranks):

- **Sequence parallel between blocks.** The residual stream and the RMSNorms run on
  ``T / tp`` tokens of the row (``SequenceParallel``; norm weights replicated, their
  gradients summed over ``tp`` by DTensor). Before attention and the MLP the row is
  all-gathered; after them it is reduce-scattered back (``RowwiseParallel`` with a
  sequence-sharded output).
- **Attention**: ``q/k/v_proj`` column-wise (each rank computes its own heads, the full row),
  ``o_proj`` row-wise. The attention backend (per-segment SDPA, flash varlen, NPU) sees the
  whole row with its local heads, so ``cu_seqlens`` keep working unchanged. Qwen3's
  per-head ``q_norm``/``k_norm`` run on the local heads (a ``SequenceParallel`` over the
  head dim, so their replicated weights get the summed gradient). DeepSeek-V3's MLA:
  ``q_proj``/``q_b_proj`` and ``kv_b_proj`` column-wise (heads), the low-rank
  ``q_a``/``kv_a`` projections and their norms replicated on the gathered row; the rotary
  key shared by all heads gets its gradient summed over ``tp``.
- **Dense MLP**: ``gate/up_proj`` column-wise, ``down_proj`` row-wise.
- **MoE block** (router, routed and shared experts): weights replicated over ``tp``, each
  tp rank routing and computing only its own ``T / tp`` tokens of the sequence-parallel
  shard (no all-gather before the block, no slicing after it, a tp-th of the MoE work per
  rank; routing is per token, so the outputs are one process's). The routers' logits
  and picks are all-gathered over ``tp`` (as over ``cp``: ``MindVL.tp_rows``), so the
  router statistics and losses are the whole row's. Each rank's gradients of the block's
  weights are its tokens' part: :func:`sum_partial_grads` adds them up over ``tp`` after
  the step's backward. ``ep`` (which combines with ``tp``) dispatches each tp rank's
  tokens among the ep ranks of its tp coordinate.

Embeddings are split over the vocabulary (``RowwiseParallel``) with a replicated output:
image features are scattered into the full row, which then enters sequence parallelism at
the first decoder layer (a local slice, no communication). Pipeline stages exchange the
sequence-parallel shards (each tp rank its own T / tp tokens). The final norm's output is
all-gathered (every rank picks the same loss positions, ``model/loss.py``), and the LM
head is split over the vocabulary with its logits left split: the cross-entropy runs on
the shards under :func:`vocab_parallel_loss` (torch's ``loss_parallel``), so no rank holds
the (loss tokens, vocab) logits; the summed loss is replicated over ``tp``.

Vision tower (no sequence parallelism: its rows are image patches, replicated over
``tp``): attention on local heads (``proj`` row-wise; Qwen2.5-VL fuses q, k and v in one
``qkv`` projection, which a contiguous column split would mix up, so its weight stays whole
and each rank projects only its heads' rows), MLPs ``gate/up`` column-wise and ``down``
row-wise, each block's output replicated (all-reduce). The projector is replicated.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from mindvl.common.errors import UserError
from mindvl.trainer.device.context_parallel import RowShards
from mindvl.trainer.model.moe import moe_blocks

PARTIAL_GRADS = "_mindvl_tp_partial_grads"  # a MoE block's tp group: grads summed over it
GRAD_BUCKET_BYTES = 1 << 27  # gradients summed in one all-reduce (sum_partial_grads)
COLWISE_ATTENTION = ("q_proj", "k_proj", "v_proj", "q_b_proj", "kv_b_proj")
HEAD_NORMS = ("q_norm", "k_norm")
DENSE_MLP = ("gate_proj", "up_proj", "down_proj")


def apply_tensor_parallel(model: nn.Module, tp_mesh) -> None:
    """Shard ``model`` (a MindVL, single-device, not yet FSDP-wrapped) over ``tp_mesh``."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        PrepareModuleInput,
        PrepareModuleOutput,
        RowwiseParallel,
        SequenceParallel,
        parallelize_module,
    )

    llm = model.llm
    decoder = llm.get_decoder()
    # a pipeline stage holds the embedding (first), the head (last) or neither
    embed, head = llm.get_input_embeddings(), llm.get_output_embeddings()
    tied = head is not None and embed is not None and head.weight is embed.weight
    if embed is not None:
        parallelize_module(
            embed, tp_mesh, RowwiseParallel(input_layouts=Replicate(), output_layouts=Replicate())
        )
    if head is not None:
        # logits stay split over the vocabulary: cross-entropy runs on the shards
        # (see vocab_parallel_loss)
        head_style = ColwiseParallel(
            input_layouts=Replicate(), output_layouts=Shard(-1), use_local_output=False
        )
        parallelize_module(head, tp_mesh, head_style)
    if tied:  # both vocab-sharded on dim 0: one DTensor parameter again
        head.weight = embed.weight
    model.register_forward_hook(_plain_outputs)
    moe = {id(block) for _, block in moe_blocks(llm)}
    if moe:  # each tp rank routes its own tokens: router records gathered, grads summed
        group = tp_mesh.get_group()
        getattr(model, "core", model).tp_rows = RowShards(group)  # a stage's whole model
        for _, block in moe_blocks(llm):
            setattr(block, PARTIAL_GRADS, group)
    for layer in decoder.layers:
        parallelize_module(layer, tp_mesh, _layer_plan(layer, moe))
        if hasattr(layer.self_attn, "expand_kv"):
            _sum_shared_key_grad(layer.self_attn, tp_mesh)
    if embed is not None:
        # the full row enters sequence parallelism at the first layer (a local slice) ...
        first = next(iter(decoder.layers))  # a stage's layers keep their whole-model indices
        _check_row_divides(first, tp_mesh.size())
        parallelize_module(
            first,
            tp_mesh,
            PrepareModuleInput(
                input_layouts=(Replicate(),), desired_input_layouts=(Shard(1),),
                use_local_output=True,
            ),
        )  # fmt: skip
    if head is not None:
        # ... and leaves it after the final norm (all-gather) for the loss on full rows
        parallelize_module(decoder.norm, tp_mesh, SequenceParallel())
        parallelize_module(
            decoder.norm,
            tp_mesh,
            PrepareModuleOutput(
                output_layouts=Shard(1), desired_output_layouts=Replicate(), use_local_output=True
            ),
        )
    # Between pipeline stages the row stays split: a stage before the last ends in an
    # identity norm and sends each tp rank's T / tp tokens to the same tp rank of the next
    # stage, whose first layer takes them as its sequence-parallel shard (Megatron's
    # scatter-gather between stages: a tp-th of the point-to-point volume, no all-gather).
    for block in model.vision.blocks if model.vision is not None else ():  # replicated in and out
        _local_head_vision_attention(block.attn, tp_mesh)
        plan = {
            "attn.proj": RowwiseParallel(output_layouts=Replicate()),
            "mlp.gate_proj": ColwiseParallel(),
            "mlp.up_proj": ColwiseParallel(),
            "mlp.down_proj": RowwiseParallel(output_layouts=Replicate()),
        }
        parallelize_module(block, tp_mesh, plan)


def _layer_plan(layer: nn.Module, moe: set[int]) -> dict:
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        PrepareModuleInput,
        RowwiseParallel,
        SequenceParallel,
    )

    attn, mlp = layer.self_attn, layer.mlp
    colwise = [n for n in COLWISE_ATTENTION if isinstance(getattr(attn, n, None), nn.Linear)]
    if not isinstance(getattr(attn, "o_proj", None), nn.Linear) or not colwise:
        raise UserError(
            f"tensor parallelism knows q/k/v/o_proj and MLA attention; {type(attn).__name__}"
            " has neither"
        )
    gathered = {"hidden_states": Replicate()}
    plan = {
        "input_layernorm": SequenceParallel(),
        "self_attn": PrepareModuleInput(
            input_kwarg_layouts={"hidden_states": Shard(1)},
            desired_input_kwarg_layouts=gathered,
            use_local_output=True,
        ),
        "self_attn.o_proj": RowwiseParallel(output_layouts=Shard(1)),
        "post_attention_layernorm": SequenceParallel(),
    }
    plan.update({f"self_attn.{n}": ColwiseParallel() for n in colwise})
    plan.update(
        {
            f"self_attn.{n}": SequenceParallel(sequence_dim=2, use_local_output=True)
            for n in HEAD_NORMS
            if hasattr(attn, n)
        }
    )
    if id(mlp) in moe:  # replicated weights, this rank's own tokens in and out
        plan["mlp"] = PrepareModuleInput(
            input_layouts=(Shard(1),), desired_input_layouts=(Shard(1),), use_local_output=True
        )
    elif all(isinstance(getattr(mlp, n, None), nn.Linear) for n in DENSE_MLP):
        plan["mlp"] = PrepareModuleInput(
            input_layouts=(Shard(1),), desired_input_layouts=(Replicate(),), use_local_output=True
        )
        plan["mlp.gate_proj"] = ColwiseParallel()
        plan["mlp.up_proj"] = ColwiseParallel()
        plan["mlp.down_proj"] = RowwiseParallel(output_layouts=Shard(1))
    else:
        raise UserError(
            f"tensor parallelism knows gate/up/down_proj MLPs and MoE blocks;"
            f" {type(mlp).__name__} is neither"
        )
    return plan


def sum_partial_grads(model: nn.Module) -> None:
    """Add up over ``tp`` the gradients of the MoE blocks' weights (call once after the
    step's backward, before clipping): each tp rank computed its own tokens' part. The
    blocks' (FSDP2) shards are the same on every tp rank, so the local shards add. One
    all-reduce per bucket of up to ``GRAD_BUCKET_BYTES``, not one per weight of every
    block (a 61-layer model's router, experts and shared experts: hundreds)."""
    import torch.distributed as dist

    buckets: dict[tuple, list[list]] = {}  # (group, dtype): its buckets of grads
    filled: dict[tuple, int] = {}  # bytes in the last bucket
    for module in model.modules():
        group = getattr(module, PARTIAL_GRADS, None)
        if group is None:
            continue
        for p in module.parameters():
            if p.grad is None:
                continue
            grad = p.grad.to_local() if hasattr(p.grad, "to_local") else p.grad
            key = (group, grad.dtype)
            if filled.get(key, GRAD_BUCKET_BYTES) >= GRAD_BUCKET_BYTES:
                buckets.setdefault(key, []).append([])
                filled[key] = 0
            buckets[key][-1].append(grad)
            filled[key] += grad.numel() * grad.element_size()
    for (group, _), runs in buckets.items():
        for grads in runs:
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat, group=group)
            for grad, summed in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
                grad.copy_(summed.view_as(grad))


def vocab_parallel_loss(enabled: bool):
    """The context a tensor-parallel model's forward AND backward run in (the loop's job):
    torch's ``loss_parallel``, under which ``F.cross_entropy`` on logits split over the
    vocabulary computes the exact loss from per-shard max/sum-exp and target logits, never
    gathering a (tokens, vocab) tensor."""
    if not enabled:
        return contextlib.nullcontext()
    from torch.distributed.tensor.parallel import loss_parallel

    return loss_parallel()


def _plain_outputs(module, args, output):
    """The loss (a replicated DTensor) as a plain tensor, so the loop adds router losses
    to it; logits asked for are gathered whole. (A pipeline stage returns its own tensors.)"""
    if not hasattr(output, "loss_sum"):
        return output
    if hasattr(output.loss_sum, "to_local"):
        output.loss_sum = output.loss_sum.to_local()
    if output.logits is not None and hasattr(output.logits, "full_tensor"):
        output.logits = output.logits.full_tensor()
    return output


def _sum_grad_over(x: torch.Tensor, tp_mesh) -> torch.Tensor:
    """Identity forward, gradient summed over ``tp`` in backward (Megatron's "copy to the
    tensor-parallel region") for a replicated tensor each rank uses for its own heads."""
    from torch.distributed.tensor import DTensor, Partial, Replicate

    shared = DTensor.from_local(x, tp_mesh, [Replicate()], run_check=False)
    return shared.to_local(grad_placements=[Partial()])


def _sum_shared_key_grad(attn: nn.Module, tp_mesh) -> None:
    """MLA's rotary key ``k_rot`` is one head shared by all heads: each rank uses it for its
    own heads only, so its gradient is summed over ``tp``."""
    expand_kv = attn.expand_kv

    def summed(kv_nope, k_rot):
        return expand_kv(kv_nope, _sum_grad_over(k_rot, tp_mesh))

    attn.expand_kv = summed


def _local_head_vision_attention(attn: nn.Module, tp_mesh) -> None:
    """Qwen2.5-VL's tower attention on this rank's heads: its fused ``qkv`` weight stays
    whole (a contiguous split would mix q, k and v), each rank projects only the q, k and
    v rows of its heads, and input and weight gradients are summed over ``tp``.

    The rows are cut by a view and a slice of the weight at call time, never by an index
    tensor made here: this runs on the meta device before the model has storage, and an
    index tensor made now would stay on meta (``index_select`` with a meta index on a CPU
    tensor returns uninitialised memory without an error; torch 2.9).
    """
    tp, rank = tp_mesh.size(), tp_mesh.get_local_rank()
    qkv, dim = attn.qkv, attn.qkv.in_features
    heads = slice(rank * dim // tp, (rank + 1) * dim // tp)  # this rank's heads x head_dim

    def local_rows(x):
        weight = _sum_grad_over(qkv.weight, tp_mesh).view(3, dim, -1)[:, heads].reshape(-1, dim)
        bias = _sum_grad_over(qkv.bias, tp_mesh).view(3, dim)[:, heads].reshape(-1)
        return nn.functional.linear(_sum_grad_over(x, tp_mesh), weight, bias)

    qkv.forward = local_rows
    attn.num_heads //= tp  # the forward reshapes to (T, 3, num_heads, head_dim)


def _check_row_divides(first_layer: nn.Module, tp: int) -> None:
    """A packed row must split evenly over the sequence-parallel ranks (one-line error)."""

    def check(module, args):
        length = args[0].shape[1]
        if length % tp:
            raise UserError(f"parallel.tp = {tp} does not divide the packed row of {length} tokens")

    first_layer.register_forward_pre_hook(check)

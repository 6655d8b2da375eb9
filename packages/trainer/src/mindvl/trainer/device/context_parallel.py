"""Context parallelism for long packed rows: DeepSpeed-Ulysses all-to-all over heads.

A packed row of T tokens (padded to a multiple of ``cp`` with tokens of no sample and no
loss) is split into ``cp`` consecutive slices; context-parallel rank r runs the LLM's
decoder layers on tokens ``[r*T/cp, (r+1)*T/cp)`` only. Inside every attention layer an
all-to-all turns this rank's (T/cp tokens, H heads) into (all T tokens, H/cp heads), the
wrapped varlen backend (``segments``, ``dense``, ``npu``) runs on the whole row with the
row's own ``cu_seqlens``, and a second all-to-all returns (T/cp tokens, H heads). The
block-causal structure is the inner backend's, applied to whole segments, so a sample that
straddles a slice boundary attends exactly as unsplit and never sees another sample. Both
all-to-alls are differentiable (``torch.distributed.nn``), so gradients take the way back.

What each rank computes (:class:`ContextParallel`, attached to a MindVL as its
``row_split``):

- **Embeddings and images**: the row's images are split into ``cp`` consecutive shares of
  about equal patch counts (:func:`image_shares`); each rank runs the vision tower and
  projector on its share only, and the shares' features are all-gathered; each rank
  embeds only its slice's tokens and scatters into them the features of its slice's image
  slots (``MindVL.embed``). In backward each share's feature
  gradient is summed over the cp ranks (all of them may hold its tokens) and reaches the
  tower on its own rank; FSDP2 sums the ranks' tower gradients. A rank whose share is
  empty runs the zero-weighted dummy image (every rank runs the same modules).
- **Loss**: next-token targets are built on the whole row (a sample's last token predicts
  nothing) and sliced with the tokens, so each rank sums exactly its tokens' losses and the
  sum over cp ranks is the unsplit row's loss.
- **Router statistics** (MoE): the routers' logits and picks are all-gathered over cp, so
  every cp rank computes the whole row's per-sample balancing loss, z-loss and expert
  counts (the balancing loss is not a sum over tokens). Gradients flow only into the rank's
  own slice of the logits, so the cp ranks' gradients add up to the whole row's once; the
  loop reduces router values over ``dp`` only.

Key/value heads fewer than (or not divisible by) the ranks are repeated in place before the
all-to-all (:func:`kv_heads_for`). Under ``tp`` the wrapper sees a tp rank's heads of its cp
slice (gathered over ``tp``) and splits those further.

Under pipeline parallelism each stage does the same with its part of the model
(:class:`~mindvl.trainer.device.pipeline_stage.MindVLStage`): stages exchange the slices.

Constraints: attention heads divisible by ``cp`` (``cp x tp`` with tensor parallelism;
``ParallelDims.check``). The ``flash`` backend is wrapped the same way but is
untested (no flash-attn on the CPU test machines); the tests cover ``segments``, ``dense``
and the ``npu`` backend's CPU reference kernel.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Any

import torch
import torch.distributed as dist

from mindvl.trainer.batch import PackedBatch
from mindvl.trainer.device.attention import AttentionBackend, apply_attention_backend
from mindvl.trainer.model.loss import IGNORE_INDEX

PREFIX = "mindvl_ulysses_"


def _all_to_all(x: torch.Tensor, group) -> torch.Tensor:
    """Differentiable all-to-all over dim 0 (chunk i goes to rank i, arrives from rank i)."""
    from torch.distributed.nn.functional import all_to_all_single

    x = x.contiguous()
    return all_to_all_single(torch.empty_like(x), x, group=group)


def heads_to_tokens(x: torch.Tensor, group, size: int) -> torch.Tensor:
    """(1, H, T/cp, D) on each rank -> (1, H/cp, T, D): this rank's heads, the whole row."""
    _, heads, local, dim = x.shape
    if heads % size:
        raise ValueError(f"{heads} attention heads do not split over {size} context ranks")
    parts = x.reshape(size, heads // size, local, dim)  # dim 0: the rank the heads go to
    got = _all_to_all(parts, group)  # dim 0: the rank (token slice) they came from
    return got.transpose(0, 1).reshape(1, heads // size, size * local, dim)


def tokens_to_heads(out: torch.Tensor, group, size: int) -> torch.Tensor:
    """(1, T, H/cp, D) attention output -> (1, T/cp, H, D): this rank's tokens, all heads."""
    _, total, heads, dim = out.shape
    parts = out.reshape(size, total // size, heads, dim)  # dim 0: the token slice's rank
    got = _all_to_all(parts, group)  # dim 0: the rank whose heads these are
    return got.permute(1, 0, 2, 3).reshape(1, total // size, size * heads, dim)


def kv_heads_for(x: torch.Tensor, size: int) -> torch.Tensor:
    """Key or value heads (dim 1) repeated so that ``size`` ranks can split them: each
    head repeated ``size / gcd(heads, size)`` times in place (``repeat_interleave``), so the
    query heads a rank receives still find their own group's key/value head. Grouped-query
    attention with fewer key/value heads than context ranks (or, under ``tp``, than
    ``cp`` times the ``tp`` ranks) needs this; the gradients of the copies are summed."""
    heads = x.shape[1]
    if heads % size == 0:
        return x
    return x.repeat_interleave(size // math.gcd(heads, size), dim=1)


class _LayerAsInner:
    """An attention layer whose config names the wrapped implementation (transformers'
    flash path picks its kernel by ``module.config._attn_implementation``) and whose
    ``num_key_value_groups`` is that of the heads it now sees (SDPA repeats key/value heads
    by it)."""

    def __init__(self, module, implementation: str, groups: int) -> None:
        configs = module.__dict__.setdefault("_ulysses_inner_configs", {})  # one per layer
        if implementation not in configs:
            config = copy.copy(module.config)
            config._attn_implementation_internal = implementation  # this copy only
            configs[implementation] = config
        self._module, self.config = module, configs[implementation]
        self.num_key_value_groups = groups

    def __getattr__(self, name: str):
        return getattr(self._module, name)


def ulysses_attention(module, query, key, value, attention_mask, **kwargs):
    """The wrapped backend's attention on the whole row, over this rank's share of heads."""
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    group, size = kwargs.pop("cp_group"), kwargs.pop("cp_size")
    name = kwargs.pop("cp_inner")
    key, value = kv_heads_for(key, size), kv_heads_for(value, size)
    q, k, v = (heads_to_tokens(x, group, size) for x in (query, key, value))
    layer = _LayerAsInner(module, name, q.shape[1] // k.shape[1])
    out, _ = ALL_ATTENTION_FUNCTIONS[name](layer, q, k, v, attention_mask, **kwargs)
    return tokens_to_heads(out, group, size), None


class UlyssesBackend(AttentionBackend):
    """Wraps a varlen backend: LLM attention over all-to-all'd heads, the tower unchanged."""

    def __init__(self, inner: AttentionBackend, group, size: int) -> None:
        from transformers import AttentionInterface

        self.inner, self.group, self.size = inner, group, size
        self.name = f"ulysses+{inner.name}"
        self.llm_implementation = PREFIX + inner.llm_implementation
        self.vision_implementation = inner.vision_implementation
        AttentionInterface.register(self.llm_implementation, ulysses_attention)

    def vision_kwargs(self, grid_thw: torch.Tensor, vision_config) -> dict[str, Any]:
        return self.inner.vision_kwargs(grid_thw, vision_config)

    def llm_kwargs(self, cu_seqlens: list[int], total: int, device) -> dict[str, Any]:
        """``total`` is the whole (padded) row: the inner backend sees every token."""
        inner = self.inner.llm_kwargs(cu_seqlens, total, device)
        meta = {"cp_group": self.group, "cp_size": self.size}
        return {**inner, **meta, "cp_inner": self.inner.llm_implementation}


class RowShards:
    """A row's tokens split into consecutive parts over ``group``, one per rank (the cp
    slices of a row, or the tp shards of sequence parallelism), gathered whole again."""

    def __init__(self, group) -> None:
        self.group = group
        self.size = dist.get_world_size(group)
        self.rank = dist.get_rank(group)

    def full_row(self, x: torch.Tensor) -> torch.Tensor:
        """(T/n, ...) of each rank -> (T, ...); gradients flow into this rank's part only."""
        parts = [torch.empty_like(x) for _ in range(self.size)]
        dist.all_gather(parts, x.detach().contiguous(), group=self.group)
        parts[self.rank] = x
        return torch.cat(parts)

    def full_row_records(self, records: list[tuple[torch.Tensor, torch.Tensor]]) -> list:
        """The routers' (logits, picks) of the whole row, from every rank's part."""
        return [(self.full_row(logits), self.full_row(index)) for logits, index in records]


def image_shares(patches: list[int], size: int) -> list[range]:
    """Each of ``size`` ranks' consecutive run of a row's images (``patches``: each image's
    patch count), cut where the running patch count passes ``k / size`` of the total."""
    total, bounds, run = sum(patches), [0], 0
    for i, n in enumerate(patches):
        run += n
        while len(bounds) < size and run * size >= len(bounds) * total:
            bounds.append(i + 1)
    bounds += [len(patches)] * (size + 1 - len(bounds))
    return [range(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


class _GatherRows(torch.autograd.Function):
    """Every rank's (n_r, hidden) rows, concatenated in rank order; backward: the whole
    gradient summed over the ranks, this rank's rows of it (all-gather / reduce-scatter)."""

    @staticmethod
    def forward(ctx, mine: torch.Tensor, counts: list[int], rank: int, group) -> torch.Tensor:
        ctx.counts, ctx.rank, ctx.group = counts, rank, group
        padded = mine.new_zeros(max(counts), mine.shape[-1])
        padded[: len(mine)] = mine
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded.contiguous(), group=group)
        return torch.cat([part[:n] for part, n in zip(parts, counts, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        start = sum(ctx.counts[: ctx.rank])
        return grad[start : start + ctx.counts[ctx.rank]], None, None, None


class ContextParallel(RowShards):
    """This rank's part of every packed row (a MindVL's ``row_split``; see the module doc)."""

    def __init__(self, group, pad_id: int) -> None:
        super().__init__(group)
        self.pad_id = pad_id

    def image_features(self, model, pixels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """The row's image features (``model.image_features`` of all its images), each cp
        rank running the tower on its share (:func:`image_shares`) and the shares
        all-gathered; the gradient of a share reaches its rank from every cp rank's
        tokens. A rank without images runs the zero-weighted dummy image (every rank runs
        the same modules)."""
        patches = grid.prod(-1).tolist()
        shares = image_shares(patches, self.size)
        mine = shares[self.rank]
        start, end = sum(patches[: mine.start]), sum(patches[: mine.stop])
        unit = model.merge_unit
        counts = [sum(patches[i] for i in share) // unit for share in shares]
        if len(mine):
            feats = model.image_features(pixels[start:end], grid[mine.start : mine.stop])
        else:
            dummy = model._dummy_image_feature(pixels.device)
            feats = dummy[:0] + 0.0 * dummy.sum()
        return _GatherRows.apply(feats, counts, self.rank, self.group)

    def pad(self, batch: PackedBatch) -> PackedBatch:
        """The row lengthened to a multiple of ``cp`` by padding (no sample, no loss)."""
        total = batch.input_ids.shape[1]
        extra = -total % self.size
        if not extra:
            return batch
        # continue the row's padding block, or start one after the last sample
        first = int(batch.position_ids[0, -1]) + 1 if total > batch.cu_seqlens[-1] else 0
        tail = torch.arange(first, first + extra, device=batch.position_ids.device)[None]

        def grow(t: torch.Tensor, value: int) -> torch.Tensor:
            return torch.cat([t, torch.full((1, extra), value, dtype=t.dtype, device=t.device)], 1)

        return replace(
            batch,
            input_ids=grow(batch.input_ids, self.pad_id),
            labels=grow(batch.labels, IGNORE_INDEX),
            position_ids=torch.cat([batch.position_ids, tail.to(batch.position_ids.dtype)], 1),
        )

    def start(self, total: int) -> int:
        """Where this rank's slice of a padded row of ``total`` tokens begins."""
        return self.rank * (total // self.size)

    def local(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's consecutive slice of dim 1 of a (1, T, ...) tensor of the padded row."""
        n = x.shape[1] // self.size
        return x[:, self.rank * n : (self.rank + 1) * n]


def apply_context_parallel(model, group) -> ContextParallel:
    """Split ``model``'s rows over ``group`` (the mesh's ``cp`` axis), wrapping its backend."""
    size = dist.get_world_size(group)
    apply_attention_backend(model, UlyssesBackend(model.attention_backend, group, size))
    llm = model.llm.config
    pad_id = llm.pad_token_id if llm.pad_token_id is not None else 0
    if pad_id == model.config.image_pad_token_id:
        pad_id = 0 if pad_id else 1
    model.row_split = ContextParallel(group, pad_id)
    return model.row_split

"""Router losses of a packed row, per sample and over real tokens only.

**Balancing loss** (Switch/GShard, as transformers' ``load_balancing_loss_func``): for one
sample of T tokens and L MoE layers, ``f_e`` is the fraction of its (token, layer) pairs
routed to expert e (top-k picks, so the f_e sum to k) and ``P_e`` the mean routing
probability of e over the same pairs; ``aux = E * sum_e f_e * P_e`` (k for a perfectly
balanced router, larger the more the load concentrates). It is computed for each sample
of a packed row on its own tokens — padding after ``cu_seqlens[-1]`` never counts — so
it equals transformers' function on that sample run alone, unpacked and unpadded.

The row returns ``aux_sum = sum over samples of T_s * aux_s``: a sum over tokens like the
cross-entropy sum, which the loop divides by the real-token count of the whole global
batch. The applied loss is then a token-weighted mean of per-sample losses, the same
however samples are packed, split into micro-batches or spread over ranks.

**Router z-loss** (ST-MoE): ``logsumexp(router_logits)^2`` per token, averaged over the
MoE layers; ``z_sum`` is its sum over real tokens (normalised the same way).

Routing probabilities: softmax of the logits, or for sigmoid routers (DeepSeek-V3) the
sigmoid scores normalised to sum to one per token (DeepSeek-V3's sequence-wise balance
loss uses the same normalised affinities).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mindvl.trainer.model.moe import MoELayout


@dataclass
class RouterStats:
    aux_sum: torch.Tensor  # sum over samples of tokens * balancing loss (fp32 scalar, grad)
    z_sum: torch.Tensor  # sum over real tokens of the layer-mean router z-loss (grad)
    tokens: int  # real tokens routed (the normaliser's share of this row)
    expert_counts: torch.Tensor  # (MoE layers, experts) top-k picks of real tokens, no grad


torch.utils._pytree.register_dataclass(RouterStats)


def routing_probabilities(logits: torch.Tensor, scoring: str) -> torch.Tensor:
    if scoring == "sigmoid":
        scores = logits.float().sigmoid()
        return scores / scores.sum(-1, keepdim=True)
    return torch.softmax(logits.float(), dim=-1)


def router_stats(
    records: list[tuple[torch.Tensor, torch.Tensor]], cu_seqlens: list[int], layout: MoELayout
) -> RouterStats:
    """Losses and expert counts of one packed row from its routers' (logits, top-k index)."""
    if len(records) != len(layout.layers):
        raise RuntimeError(
            f"recorded {len(records)} router calls for {len(layout.layers)} MoE layers"
        )
    real = cu_seqlens[-1]
    n_exp = layout.num_experts
    device = records[0][0].device
    lengths = torch.tensor(cu_seqlens, device=device).diff()
    segment = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)
    picks = torch.zeros(len(lengths), n_exp, device=device)
    probs = torch.zeros(len(lengths), n_exp, device=device)
    z = torch.zeros((), device=device)
    counts = []
    for logits, index in records:
        logits, index = logits[:real].float(), index[:real]
        chosen = torch.zeros_like(logits).scatter_(1, index, 1.0)
        picks = picks.index_add(0, segment, chosen)
        probs = probs.index_add(0, segment, routing_probabilities(logits, layout.scoring))
        z = z + torch.logsumexp(logits, dim=-1).square().sum()
        counts.append(chosen.sum(0))
    n_layers = len(records)
    per_token = (lengths.clamp(min=1) * n_layers**2).float()
    # sum_s T_s * E * sum_e (picks/(L T_s)) * (probs/(L T_s))
    aux_sum = n_exp * ((picks * probs).sum(-1) / per_token).sum()
    return RouterStats(
        aux_sum=aux_sum,
        z_sum=z / n_layers,
        tokens=real,
        expert_counts=torch.stack(counts).detach(),
    )

"""MoE router losses across pipeline stages.

The balancing loss of a sample multiplies two sums over ALL its MoE layers
(``E * sum_e f_e * P_e``, :mod:`mindvl.trainer.model.moe_loss`), so stages cannot each
compute their share and add. Instead four tensors travel down the pipeline with the
hidden states, each stage adding its MoE layers to them:

- ``picks`` (1, T, E): per token, how many of the stage's layers picked each expert,
- ``probs`` (1, T, E): per token, the routing probabilities summed over layers (grad),
- ``z`` (1, T): per token, ``logsumexp(router_logits)^2`` summed over layers (grad),
- ``counts`` (1, L, E): top-k picks of the real tokens per MoE layer (the step's load
  metrics and aux-loss-free bias updates), a stage filling its layers' rows.

The last stage reduces them per sample over real tokens, which is
:func:`~mindvl.trainer.model.moe_loss.router_stats` with the layer and token sums taken
in another order. Every tensor a stage receives must get a gradient back
(``torch.distributed.pipelining`` sends one for each), which ``counts`` gets from a
zero-weighted term of the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mindvl.trainer.model.moe import MoELayout
from mindvl.trainer.model.moe_loss import routing_probabilities


@dataclass(frozen=True)
class RouterCarry:
    layout: MoELayout
    rows: tuple[int, ...]  # rows of ``counts`` (positions in layout.layers) on this stage

    @classmethod
    def for_stage(cls, layout: MoELayout, layers: range) -> RouterCarry:
        rows = tuple(i for i, layer in enumerate(layout.layers) if layer in layers)
        return cls(layout, rows)

    def empty(self, total: int, device) -> tuple[torch.Tensor, ...]:
        e, n_layers = self.layout.num_experts, len(self.layout.layers)
        zeros = lambda *shape: torch.zeros(shape, device=device)  # noqa: E731
        return zeros(1, total, e), zeros(1, total, e), zeros(1, total), zeros(1, n_layers, e)

    def add(self, carry, records, real: int) -> tuple[torch.Tensor, ...]:
        """``carry`` plus this stage's router calls (``records`` of RouterTap, in order)."""
        if len(records) != len(self.rows):
            raise RuntimeError(
                f"recorded {len(records)} router calls for {len(self.rows)} MoE layers"
            )
        picks, probs, z, counts = carry
        local = torch.zeros_like(counts)
        for row, (logits, index) in zip(self.rows, records, strict=True):
            logits = logits.float()
            chosen = torch.zeros_like(logits).scatter_(1, index, 1.0)
            picks = picks + chosen.unsqueeze(0)
            probs = probs + routing_probabilities(logits, self.layout.scoring).unsqueeze(0)
            z = z + torch.logsumexp(logits, dim=-1).square().unsqueeze(0)
            local[0, row] = chosen[:real].sum(0)
        return picks, probs, z, counts + local

    def losses(self, carry, cu_seqlens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(aux_sum, z_sum) of the row, as ``router_stats`` defines them."""
        picks, probs, z, _ = carry
        real, n_layers = cu_seqlens[-1], len(self.layout.layers)
        device = picks.device
        lengths = torch.tensor(cu_seqlens, device=device).diff()
        segment = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)
        n_seg, n_exp = len(lengths), self.layout.num_experts
        seg_picks = picks.new_zeros(n_seg, n_exp).index_add(0, segment, picks[0, :real])
        seg_probs = probs.new_zeros(n_seg, n_exp).index_add(0, segment, probs[0, :real])
        per_token = (lengths.clamp(min=1) * n_layers**2).float()
        aux_sum = n_exp * ((seg_picks * seg_probs).sum(-1) / per_token).sum()
        return aux_sum, z[0, :real].sum() / n_layers

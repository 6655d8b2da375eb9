"""The loop's side of mixture-of-experts training: router losses in the step's objective,
per-expert load in the metrics, aux-loss-free bias updates.

**Normalisation.** A micro-batch's balancing and z-loss sums (per-sample losses weighted by
their tokens, :mod:`mindvl.trainer.model.moe_loss`) are divided by the real-token count of
the whole global batch, counted before any forward and all-reduced like the loss-token
count of the cross-entropy (see :mod:`mindvl.trainer.loop`). The applied gradient is then
the same however samples are packed, split into micro-batches or spread over ranks.

**Aux-loss-free balancing** (DeepSeek-V3): after each optimizer step, every router with an
``e_score_correction_bias`` moves it by ``rate * sign(mean load - load)`` per expert, from
the step's top-k counts summed over all micro-batches and data-parallel ranks; every rank
applies the same update, so the (unsharded) buffers stay equal. The biases are model
buffers, saved with the weights in every checkpoint.
"""

from __future__ import annotations

import torch

from mindvl.common.errors import UserError
from mindvl.trainer.model.moe import BIAS_NAME, correction_gates
from mindvl.trainer.model.moe_loss import RouterStats
from mindvl.trainer.stage_config import MoESpec


def load_metrics(counts: torch.Tensor, layers: tuple[int, ...]) -> dict[str, float]:
    """Per MoE layer: min, max and coefficient of variation of the tokens each expert got."""
    row = {}
    for layer, c in zip(layers, counts.double(), strict=True):
        mean = float(c.mean())
        row[f"experts_l{layer}_min"] = float(c.min())
        row[f"experts_l{layer}_max"] = float(c.max())
        row[f"experts_l{layer}_cv"] = float(c.std(unbiased=False)) / mean if mean else 0.0
    return row


class MoETraining:
    """Accumulates one step's router statistics; ``finish_step`` reduces and applies them."""

    def __init__(self, spec: MoESpec, model) -> None:
        self.layout = model.moe
        llm_config = model.llm.config
        default = float(getattr(llm_config, "router_aux_loss_coef", 0.0) or 0.0)
        self.aux_coef = default if spec.aux_loss_coef is None else spec.aux_loss_coef
        self.z_coef = spec.z_loss_coef
        self.rate = spec.bias_update_rate
        self._gates = correction_gates(model.llm)
        if self.rate and not self._gates:
            raise UserError(
                f"moe.bias_update_rate needs routers with e_score_correction_bias"
                f" (DeepSeek-V3 style); {llm_config.model_type} has none"
            )
        self._reset()

    @property
    def biases(self) -> list[torch.Tensor]:
        """Looked up at each use: materialising a meta-built model gives the buffers new
        tensors (:mod:`mindvl.trainer.device.materialize`)."""
        return [getattr(gate, BIAS_NAME) for gate in self._gates]

    def _reset(self) -> None:
        self.aux, self.z, self.counts = 0.0, 0.0, None

    def describe(self) -> str:
        lay = self.layout
        return (
            f"MoE: {len(lay.layers)} layers, top-{lay.top_k} of {lay.num_experts} experts"
            f" ({lay.scoring}); aux_loss_coef {self.aux_coef:g}, z_loss_coef {self.z_coef:g},"
            f" bias_update_rate {self.rate:g}"
        )

    def objective(self, router: RouterStats) -> torch.Tensor:
        """The weighted router-loss sum of one micro-batch (the loop normalises it)."""
        self.aux += float(router.aux_sum.detach())
        self.z += float(router.z_sum.detach())
        c = router.expert_counts.double()
        self.counts = c if self.counts is None else self.counts + c
        return self.aux_coef * router.aux_sum + self.z_coef * router.z_sum

    def finish_step(self, all_reduce_sum, n_real: float) -> dict[str, float]:
        """Reduce over ranks, update the biases, return the step's metric fields."""
        shape = self.counts.shape
        flat = all_reduce_sum([self.aux, self.z, *self.counts.flatten().tolist()])
        aux, z = flat[0] / n_real, flat[1] / n_real
        counts = torch.tensor(flat[2:], dtype=torch.float64).reshape(shape)
        if self.rate:
            self._update_biases(counts)
        self._reset()
        return {"aux_loss": aux, "z_loss": z, **load_metrics(counts, self.layout.layers)}

    @torch.no_grad()
    def _update_biases(self, counts: torch.Tensor) -> None:
        for bias, load in zip(self.biases, counts, strict=True):
            if bias.is_meta:  # a layer of another pipeline stage
                continue
            step = torch.sign(load.mean() - load) * self.rate
            bias.add_(step.to(bias.device, bias.dtype))

    def total_loss(self, ce: float, fields: dict[str, float]) -> float:
        return ce + self.aux_coef * fields["aux_loss"] + self.z_coef * fields["z_loss"]

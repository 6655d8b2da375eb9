"""One optimizer step of a stage: the step's packed micro-batches -> forward and backward of
the normalised loss -> clipped gradients -> AdamW step -> the step's metrics row.

**Loss normalisation.** The model returns the *sum* of token cross-entropies of a packed
row (under context parallelism: of the rank's slice of it) and its loss-token count.
Before any backward pass of a step, the step counts the loss tokens of all its
micro-batches and all-reduces that count over the data-parallel ranks (``N``; ranks that
share a batch count it once). Each micro-batch then back-propagates
``loss_sum * dp * cp / N``: DDP and FSDP average gradients over the ``dp x cp`` ranks, so
the applied gradient is exactly ``sum over every loss token of the global batch / N`` — a
token mean over the global batch, independent of how samples were packed, split into
micro-batches or spread over ranks (docs/PARALLEL.md).
The logged loss is the all-reduced loss sum over ``N``. MoE LLMs add their router losses
(balancing, z-loss) normalised by the global batch's real-token count the same way
(:mod:`mindvl.trainer.moe_training`); ``loss`` is then the whole objective and
``ce_loss``/``aux_loss``/``z_loss`` its parts.

Under pipeline parallelism (``parallel.pp``) a schedule runs the step's micro-batches
through the stages and back-propagates the same scaled objective
(:mod:`mindvl.trainer.device.pipeline`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from mindvl.trainer.device.mesh import ParallelDims
from mindvl.trainer.device.parallel import clip_gradients, no_grad_sync
from mindvl.trainer.device.pipeline import Pipeline
from mindvl.trainer.device.tensor_parallel import sum_partial_grads, vocab_parallel_loss
from mindvl.trainer.flops import FlopsModel
from mindvl.trainer.model import count_loss_tokens
from mindvl.trainer.moe_training import MoETraining
from mindvl.trainer.optimizer import current_lrs
from mindvl.trainer.runtime import Runtime
from mindvl.trainer.stage_config import OptimizerSpec


@dataclass
class TrainStep:
    """What one step needs; calling it runs the step (:meth:`__call__`).

    ``spec``: the stage's optimizer settings (learning rates per part, ``grad_clip``);
    ``pipe``: the pipeline schedule under ``pp > 1`` (``model`` is then this rank's
    stages); ``autocast_bf16``: bf16 through autocast (without FSDP2, which casts the
    parameters itself); ``peak``: the device's peak TFLOP/s for ``mfu`` (None: unknown).
    """

    spec: OptimizerSpec
    seq_len: int
    rt: Runtime
    dims: ParallelDims
    mesh: object  # the DeviceMesh (None in one process)
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    micro: int
    flops_model: FlopsModel
    peak: float | None = None
    moe: MoETraining | None = None
    pipe: Pipeline | None = None
    autocast_bf16: bool = False

    def __post_init__(self) -> None:
        # token counts over the dp ranks (ranks that share a batch count it once); loss
        # sums also over cp (each context-parallel rank holds part of a row)
        self.dp_group = self.mesh["dp"] if self.mesh is not None else None
        self.dp_cp_group = self.mesh["dp_cp"] if self.mesh is not None else None

    def reduce_dp(self, values: list[float]) -> list[float]:
        return self.rt.all_reduce_sum(values, self.dp_group)

    def __call__(self, batches: Iterator, step: int, seen: int) -> dict:
        """Train on the next ``micro`` packed rows of ``batches`` as step ``step`` (1-based),
        ``seen`` tokens seen before it; returns the step's metrics row."""
        rt, dims, moe, pipe = self.rt, self.dims, self.moe, self.pipe
        t0 = time.perf_counter()
        packs = [next(batches) for _ in range(self.micro)]
        loss_counts = [count_loss_tokens(b.labels, b.cu_seqlens) for b in packs]
        local = sum(loss_counts)
        flops = sum(
            self.flops_model.batch_flops(b.image_grid_thw, b.cu_seqlens, n)
            for b, n in zip(packs, loss_counts, strict=True)
        )
        local_real = sum(b.real_tokens for b in packs)
        n_loss, n_real = rt.all_reduce_sum([float(local), float(local_real)], self.dp_group)
        if n_loss == 0:
            raise RuntimeError(f"step {step}: no loss tokens in the global batch")
        loss_sum = self._forward_backward(packs, n_loss, n_real)
        if dims.tp > 1:  # MoE blocks computed each tp rank's own tokens
            sum_partial_grads(self.model)
        if pipe is not None:
            grad_norm = pipe.clip_gradients(self.spec.grad_clip, dims.ep > 1)
        else:
            grad_norm = clip_gradients(self.model, self.spec.grad_clip, dims.ep > 1)
        lrs = current_lrs(self.optimizer, self.spec)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        moe_fields = moe.finish_step(self.reduce_dp, n_real) if moe is not None else {}
        real = sum(b.real_tokens for b in packs)
        patches = sum(
            0 if b.image_grid_thw is None else int(b.image_grid_thw.prod(-1).sum()) for b in packs
        )
        n_samples = sum(len(b.sample_keys) for b in packs)
        (g_loss,) = rt.all_reduce_sum([loss_sum], self.dp_cp_group)
        # flops of each data-parallel batch once, shared by every device (/ world below)
        g = [g_loss, *self.reduce_dp([real, patches, n_samples, len(packs), flops])]
        dt = time.perf_counter() - t0
        row = {
            "step": step,
            "loss": g[0] / n_loss,
            **lrs,
            "grad_norm": grad_norm,
            "loss_tokens": int(n_loss),
            "llm_tokens": int(g[1]),
            "vit_tokens": int(g[2]),
            "tokens_per_s": g[1] / dt,
            "padding": 1 - g[1] / (g[4] * self.seq_len),
            "samples_per_pack": g[3] / g[4],
            "step_s": dt,
            "tokens_seen": seen + int(g[1]),
            # achieved model TFLOP/s per device (flops.py), and MFU where a peak is known
            "tflops": g[5] / dt / rt.world / 1e12,
        }
        if self.peak is not None:
            row["mfu"] = row["tflops"] / self.peak
        if moe is not None:
            row["ce_loss"] = row["loss"]
            row["loss"] = moe.total_loss(row["ce_loss"], moe_fields)
            row.update(moe_fields)
        return row

    def _forward_backward(self, packs: list, n_loss: float, n_real: float) -> float:
        """Back-propagate the step's scaled objective; returns this rank's loss sum."""
        dims, moe, pipe = self.dims, self.moe, self.pipe
        # FSDP2/DDP average gradients over the dp x cp ranks
        grad_ranks = dims.dp * dims.cp
        scale = grad_ranks / n_loss
        tp = dims.tp > 1  # the loss runs on vocabulary shards, forward and backward
        if pipe is not None:  # the schedule runs forward and backward of all rows
            with vocab_parallel_loss(tp):
                result = pipe.step(packs, scale, moe, grad_ranks / n_real)
            for router in result.routers or []:
                moe.objective(router)  # the step's router statistics, for finish_step
            return result.loss_sum
        loss_sum = 0.0
        device = self.rt.device
        for i, b in enumerate(packs):
            sync_off = i < self.micro - 1
            with no_grad_sync(self.model, enabled=sync_off), vocab_parallel_loss(tp):
                with torch.autocast(device.type, torch.bfloat16, enabled=self.autocast_bf16):
                    outp = self.model(b.to(device))
                objective = outp.loss_sum * scale
                if moe is not None:
                    objective = objective + moe.objective(outp.router) * (grad_ranks / n_real)
                objective.backward()  # backward outside autocast
            loss_sum += float(outp.loss_sum.detach())
        return loss_sum

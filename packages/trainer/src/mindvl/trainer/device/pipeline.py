"""Pipeline parallelism for MindVL with ``torch.distributed.pipelining``.

The model is cut into ``pp x pp_stages_per_rank`` stages
(:mod:`mindvl.trainer.device.pipeline_stage`), rank ``r`` of the mesh's ``pp`` axis holding
stages ``r, r + pp, ...`` (loop order), or under the V-shaped schedules stages ``r`` and
``2 pp - 1 - r``; FSDP2 then shards each stage over ``dp_shard_cp`` (torchtitan's
order: pipeline outermost). A step's micro-batches are the step's packed rows (the loop's
``micro`` rows per data-parallel rank), stacked into (M, T) tensors that the schedule
(``parallel.pp_schedule``: ``1F1B``, ``GPipe``; with several stages per rank
``Interleaved1F1B``, ``LoopedBFS``, ``InterleavedZeroBubble``; with two, V-shaped,
``ZBVZeroBubble``, ``DualPipeV``) chunks into M micro-batches of one row each. The
zero-bubble schedules split each stage's backward into the input gradient (sent upstream
at once) and the weight gradient (run later to fill the bubbles); torch's stages do that
split through autograd, so the stage code is the same for every schedule. The images of a row are zero-padded to the step's largest row
(patches) and image count, so they chunk the same way; the first stage cuts them back.

**Loss.** The last stage returns each row's summed token cross-entropy (and MoE router
sums); the schedule back-propagates ``loss_sum * scale`` with the loop's
``scale = dp * cp / N`` (``scale_grads=False``: no extra division by the micro-batch
count), so every parameter gets the 1-process gradient. The step's loss sum and router
statistics are broadcast from the last stage over ``pp``, so rank 0 logs them.

**Tied embeddings** (input embedding = LM head) live on the first and the last stage: their
gradients are summed between the two after backward, so both copies take the same
AdamW step, and the gradient norm counts them once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.pipelining import PipelineStage

from mindvl.common.errors import UserError
from mindvl.trainer.device.mesh import ParallelDims
from mindvl.trainer.device.parallel import clip_gradients
from mindvl.trainer.device.pipeline_stage import (
    MindVLStage,
    model_shell,
    segment_ids,
    stage_layer_ranges,
)
from mindvl.trainer.model.moe_loss import RouterStats

SCHEDULES = (
    "1F1B", "GPipe", "Interleaved1F1B", "LoopedBFS", "InterleavedZeroBubble", "ZBVZeroBubble",
    "DualPipeV",
)  # fmt: skip
SINGLE = ("1F1B", "GPipe")  # one stage per rank; the others loop over several
V_SHAPED = ("ZBVZeroBubble", "DualPipeV")  # two stages per rank: r and 2 pp - 1 - r
SPLIT_BACKWARD = ("InterleavedZeroBubble", *V_SHAPED)  # input and weight gradients apart


def reshards_after_forward(schedule: str) -> bool:
    """Whether FSDP2 may free a stage's gathered weights after each forward. Not under
    the split-backward schedules: their weight gradients are taken later against the
    gathered weights the forward used (with them freed and gathered again, measured: the
    gradient norm 0.660 for 0.915, weight gradients lost)."""
    return schedule not in SPLIT_BACKWARD


class LocalStages(nn.Module):
    """This rank's stages when it holds several (``parallel.pp_stages_per_rank``)."""

    def __init__(self, stages: list[MindVLStage]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)


def stages_of(model) -> list[MindVLStage]:
    return list(model.stages) if isinstance(model, LocalStages) else [model]


def stage_indices(rank: int, pp: int, per_rank: int, schedule: str) -> list[int]:
    """The stages pipeline rank ``rank`` holds: ``r, r + pp, ...`` (torch's loop order),
    or ``r, 2 pp - 1 - r`` under the V-shaped schedules."""
    if schedule in V_SHAPED:
        return [rank, 2 * pp - 1 - rank]
    return [rank + k * pp for k in range(per_rank)]


def check_schedule(schedule: str, per_rank: int, tied: bool) -> None:
    """One-line errors for a schedule the stage count or the model cannot take."""
    if schedule in SINGLE:
        need, fits = "1", per_rank == 1
    elif schedule in V_SHAPED:
        need, fits = "2", per_rank == 2
    else:
        need, fits = ">= 2", per_rank >= 2
    if not fits:
        raise UserError(
            f"parallel.pp_schedule {schedule} needs pp_stages_per_rank {need} (got {per_rank})"
        )
    if schedule in V_SHAPED and tied:
        # rank 0 would hold the first and the last stage, each FSDP2 unit the same weight
        raise UserError(
            f"parallel.pp_schedule {schedule} puts the first and the last stage on one rank;"
            " it needs untied input and output embeddings (tie_word_embeddings: false)"
        )


def split_model(core, dims: ParallelDims, mesh, spec):
    """This rank's stage(s) of ``core``, FSDP2-sharded; ``spec`` is the ParallelSpec.

    What the rank does not hold (:func:`stage_indices`) is dropped from ``core``.
    """
    per_rank = spec.pp_stages_per_rank
    check_schedule(spec.pp_schedule, per_rank, bool(core.llm.config.tie_word_embeddings))
    n_stages = dims.pp * per_rank
    ranges = stage_layer_ranges(core.llm.config.num_hidden_layers, n_stages, spec.pp_layers)
    rank = mesh["pp"].get_local_rank()
    local = stage_indices(rank, dims.pp, per_rank, spec.pp_schedule)
    if per_rank == 1:
        stages = [MindVLStage(core, rank, n_stages, ranges[rank])]
    else:
        stages = [MindVLStage(model_shell(core), i, n_stages, ranges[i]) for i in local]
        core.vision = core.projector = None  # the stages hold what this rank keeps
        core.llm.get_decoder().layers = nn.ModuleList()
    model = stages[0] if per_rank == 1 else LocalStages(stages)
    model.pp_group = mesh["pp"].get_group()  # optimizer groups (device/state_names.py)
    return model


class _HandshakeFixedStage(PipelineStage):
    """``PipelineStage`` whose first neighbour handshake sends what the peer receives, and
    only to other ranks, and whose input gradients leave contiguous.

    torch 2.9 sends an int64 scalar and receives into a float32 tensor there; NCCL lets
    that pass, gloo aborts on the size mismatch (8 vs 4 bytes). Under the V-shaped
    schedules a neighbour stage may sit on this rank (its activations are handed over
    locally), and gloo has no send to oneself. The split backward of the zero-bubble
    schedules sends autograd's input gradients as they come, and a MoE stage's gradient
    of the carried expert counts is an expanded zero (the counts enter the loss with
    weight 0): no backend sends a non-contiguous tensor.
    """

    def _get_init_p2p_neighbors_ops(self):
        ops = super()._get_init_p2p_neighbors_ops()
        for op in ops:
            if op.op is dist.isend:
                op.tensor = op.tensor.reshape(1).float()
        return [op for op in ops if op.group_peer != self.group_rank]

    def get_bwd_send_ops(self, bwd_chunk_id: int):
        ops = super().get_bwd_send_ops(bwd_chunk_id)
        for op in ops:
            op.tensor = op.tensor.contiguous()
        return ops


@dataclass
class StepResult:
    loss_sum: float  # summed token cross-entropy of this rank's rows
    routers: list[RouterStats] | None  # MoE: per micro-batch (detached, every rank)


class Pipeline:
    """This rank's stage under a schedule; ``step`` runs forward and backward of one step."""

    def __init__(self, model, mesh, device, schedule: str, micro: int) -> None:
        from torch.distributed.pipelining.schedules import get_schedule_class

        self.module = model  # the stage (or LocalStages), FSDP2-wrapped by then
        stages = stages_of(model)
        n_stages = stages[0].num_stages
        self.mesh, self.device, self.micro = mesh, device, micro
        self.group = mesh["pp"].get_group()
        pp = dist.get_world_size(self.group)
        self.first = any(s.first for s in stages)
        self.last = any(s.last for s in stages)
        per_rank = n_stages // pp
        last = next(
            r for r in range(pp) if n_stages - 1 in stage_indices(r, pp, per_rank, schedule)
        )
        self.last_rank = dist.get_global_rank(self.group, last)
        if micro < pp:
            raise UserError(
                f"parallel.pp = {pp} needs at least as many rows per step and"
                f" data-parallel rank (tokens_per_step / seq_len / dp = {micro})"
            )
        if schedule not in SCHEDULES:
            raise UserError(
                f"parallel.pp_schedule {schedule!r} is not available ({', '.join(SCHEDULES)})"
            )
        pipe = [
            _HandshakeFixedStage(s, s.index, n_stages, device, group=self.group) for s in stages
        ]
        cls = get_schedule_class(schedule)
        kw = {"loss_fn": self._loss, "scale_grads": False}
        try:
            self.schedule = cls(pipe[0] if schedule in SINGLE else pipe, micro, **kw)
            if schedule == "ZBVZeroBubble":
                self.schedule = _handing_over_locally(self.schedule, pipe, micro, kw)
        except ValueError as err:  # torch's micro-batch rules of the schedule
            raise UserError(f"parallel.pp_schedule {schedule}: {err}") from None
        self.tied = _tied_weight(stages)
        tied_config = stages[0].llm.config.tie_word_embeddings
        self.tied_group = _first_last_group(mesh, pp) if tied_config else None
        self._scale, self._moe_scale, self._coefs = 1.0, 1.0, (0.0, 0.0)
        self._outputs: list[tuple] = []

    def _loss(self, output, target) -> torch.Tensor:
        """The objective the schedule back-propagates for one row (last stage)."""
        if isinstance(output, torch.Tensor):
            self._outputs.append((output.detach(),))
            return output * self._scale
        loss_sum, aux_sum, z_sum, counts = output
        self._outputs.append(tuple(t.detach() for t in output))
        aux_coef, z_coef = self._coefs
        router = (aux_coef * aux_sum + z_coef * z_sum) * self._moe_scale
        # every received tensor must get a gradient back: counts through a zero weight
        return loss_sum * self._scale + router + 0.0 * counts.sum()

    def step(self, packs, scale: float, moe=None, moe_scale: float = 0.0) -> StepResult:
        """Forward and backward of the step's rows ``packs`` (the loop's micro-batches)."""
        self._scale, self._moe_scale = scale, moe_scale
        self._coefs = (moe.aux_coef, moe.z_coef) if moe is not None else (0.0, 0.0)
        self._outputs = []
        inputs, kwargs = stack_rows(packs, self.device)
        target = kwargs["labels"] if self.last else None
        args = inputs if self.first else ()
        self.schedule.step(*args, target=target, **kwargs)
        self._sync_tied_grads()
        return self._broadcast(moe)

    def _broadcast(self, moe) -> StepResult:
        n_layers, n_exp = (len(moe.layout.layers), moe.layout.num_experts) if moe else (0, 0)
        width = 1 + (2 + n_layers * n_exp if moe else 0)
        flat = torch.zeros(self.micro, width, dtype=torch.float64)
        if self.last:
            for i, out in enumerate(self._outputs):
                parts = [out[0].reshape(1)] + [t.reshape(-1) for t in out[1:]]
                flat[i] = torch.cat(parts).double().cpu()
        flat = flat.to(self.device)
        dist.broadcast(flat, src=self.last_rank, group=self.group)
        flat = flat.cpu()
        routers = None
        if moe:
            routers = [
                RouterStats(
                    aux_sum=row[1].float(),
                    z_sum=row[2].float(),
                    tokens=0,  # not broadcast: MoETraining normalises by the step's count
                    expert_counts=row[3:].reshape(n_layers, n_exp).float(),
                )
                for row in flat
            ]
        return StepResult(float(flat[:, 0].sum()), routers)

    def _sync_tied_grads(self) -> None:
        if self.tied is None or self.tied.grad is None:
            return
        grad = self.tied.grad
        local = grad.to_local() if hasattr(grad, "to_local") else grad
        dist.all_reduce(local, group=self.tied_group)

    def clip_gradients(self, max_norm: float | None, sharded_meshes: bool) -> float:
        """Global gradient norm over all stages and shards (tied weights once); clips.

        Each stage's norm comes from its parameters' meshes (a weight replicated over ``tp``
        or ``dp_replicate`` counted once: ``parallel.clip_gradients``); the stages' squared
        norms add up over ``pp``."""
        uncounted = self.tied if self.last else None
        stage = clip_gradients(self.module, None, sharded_meshes, uncounted)
        sq = torch.tensor(stage**2, dtype=torch.float64, device=self.device)
        dist.all_reduce(sq, group=self.group)
        norm = float(sq) ** 0.5
        coef = min(max_norm / (norm + 1e-6), 1.0) if max_norm else 1.0
        if coef < 1.0:  # torch's clip_grad_norm_ rule
            for p in self.module.parameters():
                if p.grad is not None:
                    p.grad.mul_(coef)
        return norm


def _handing_over_locally(schedule, stages, micro: int, kw: dict):
    """``schedule``'s order run by torch's schedule runtime, which lowers it with the
    communication each action needs. torch 2.9 runs ZBVZeroBubble's own loop with a
    point-to-point send and receive also between the two stages of one rank (NCCL sends
    to itself, gloo cannot); the runtime hands those activations and gradients over in
    memory, as DualPipeV (a runtime schedule) does. The order, and so every computation,
    is ZBVZeroBubble's."""
    from torch.distributed.pipelining.schedules import _PipelineScheduleRuntime

    runtime = _PipelineScheduleRuntime(stages, micro, **kw)
    runtime._prepare_schedule_with_comms(schedule.pipeline_order)
    return runtime


def stack_rows(packs, device) -> tuple[tuple, dict]:
    """The step's rows as the first stage's inputs and every stage's per-token kwargs."""
    total = packs[0].input_ids.shape[-1]
    if any(b.input_ids.shape[-1] != total for b in packs):
        raise ValueError("pipeline micro-batches need rows of one length (seq_len)")
    rows = lambda name: torch.cat([getattr(b, name) for b in packs]).to(device)  # noqa: E731
    n_img = max((len(b.image_grid_thw) for b in packs if b.image_grid_thw is not None), default=0)
    n_patch = max((len(b.pixel_values) for b in packs if b.pixel_values is not None), default=0)
    dim = next((b.pixel_values.shape[-1] for b in packs if b.pixel_values is not None), 1)
    grid = torch.zeros(len(packs), n_img, 3, dtype=torch.long)
    pixels = torch.zeros(len(packs), n_patch, dim)
    for i, b in enumerate(packs):
        if b.image_grid_thw is not None and len(b.image_grid_thw):
            grid[i, : len(b.image_grid_thw)] = b.image_grid_thw
            pixels[i, : len(b.pixel_values)] = b.pixel_values
    kwargs = {
        "position_ids": rows("position_ids"),
        "segment_ids": torch.stack([segment_ids(b.cu_seqlens, total) for b in packs]).to(device),
        "labels": rows("labels"),
    }
    return (rows("input_ids"), pixels.to(device), grid.to(device)), kwargs


def _tied_weight(stages: list[MindVLStage]):
    """The input embedding / LM head weight when tied and held here (first or last stage)."""
    if not stages[0].llm.config.tie_word_embeddings:
        return None
    for stage in stages:
        if stage.first:
            return stage.llm.get_decoder().embed_tokens.weight
        if stage.last:
            return stage.llm.lm_head.weight
    return None


def _first_last_group(mesh, pp: int):
    """The process group of this rank's first and last pipeline stage (tied embeddings)."""
    if pp == 2:
        return mesh["pp"].get_group()
    mine = None
    for col in mesh.mesh.reshape(pp, -1).T.tolist():  # every rank creates every group
        group = dist.new_group([col[0], col[-1]])
        if dist.get_rank() in col:
            mine = group
    return mine

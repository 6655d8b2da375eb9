"""One pipeline stage of a MindVL, cut from the whole model (pipeline parallelism).

The first stage holds the vision tower, the projector and the token embeddings; the LLM's
decoder layers are split into contiguous runs, one per stage; the last stage holds the
final norm, the LM head and the summed token loss. A stage's parameter names are the
whole model's (``llm.model.layers.5...`` stays ``5`` on whichever stage holds it), so
its state dict is a slice of the 1-process one.

A stage runs one micro-batch (one packed row) per call. What every stage needs besides
the activations arrives as per-token keyword tensors that the schedule chunks on dim 0
like the rows: ``position_ids``, ``segment_ids`` (the sample index of each token, -1 for
the padding; each stage rebuilds ``cu_seqlens`` from it) and ``labels``. The first stage
also takes the row's images as ``pixels`` (patches zero-padded to the step's largest row)
and ``grid`` (one (t, h, w) row per image, zero rows after the row's images).

Under context parallelism (the core's ``row_split``) a stage runs its cp rank's slice of
the row: the first stage embeds its slice (``MindVL.embed``), the stages exchange
slices, the attention backend gets the whole row's ``cu_seqlens`` and the last stage sums
its slice's token losses; router sums travel as whole rows (each stage's router logits and
picks all-gathered over ``cp``).

Mixture-of-experts router losses do not split by layer (the balancing loss multiplies
layer sums), so per-token router sums travel with the hidden states (see
:mod:`mindvl.trainer.device.pipeline_router`) and the last stage reduces them exactly as
:func:`~mindvl.trainer.model.moe_loss.router_stats` does for the whole model.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from mindvl.common.errors import UserError
from mindvl.trainer.batch import PackedBatch
from mindvl.trainer.device.pipeline_router import RouterCarry
from mindvl.trainer.model.loss import next_token_targets, summed_target_loss


def stage_layer_ranges(n_layers: int, pp: int, sizes: list[int] | None) -> list[range]:
    """Decoder layers of each stage: ``sizes`` (parallel.pp_layers) or an even split with
    the remainder on the later stages (the first stage also runs the vision tower)."""
    if sizes is None:
        if n_layers < pp:
            raise UserError(f"{pp} pipeline stages need at least {pp} LLM layers (got {n_layers})")
        base, extra = divmod(n_layers, pp)
        sizes = [base + (1 if i >= pp - extra else 0) for i in range(pp)]
    elif len(sizes) != pp or sum(sizes) != n_layers or min(sizes) < 1:
        raise UserError(
            f"parallel.pp_layers {sizes} must give each of the {pp} stages at least one layer"
            f" and sum to the LLM's {n_layers} layers"
        )
    starts = [sum(sizes[:i]) for i in range(pp)]
    return [range(s, s + n) for s, n in zip(starts, sizes, strict=True)]


def segment_ids(cu_seqlens: list[int], total: int) -> torch.Tensor:
    """(total,) sample index of each token of a packed row; -1 for the padding."""
    lengths = torch.tensor(cu_seqlens).diff()
    ids = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    return torch.cat([ids, torch.full((total - len(ids),), -1, dtype=torch.long)])


def cu_seqlens_of(segments: torch.Tensor) -> list[int]:
    """The ``cu_seqlens`` of a row from its :func:`segment_ids` (one host sync)."""
    ids = segments.reshape(-1)
    real = ids[ids >= 0]
    counts = torch.bincount(real).tolist() if real.numel() else []
    cu = [0]
    for n in counts:
        cu.append(cu[-1] + n)
    return cu


def _kept_layers(layers: nn.ModuleList, kept: range) -> nn.ModuleList:
    """The stage's decoder layers under their whole-model indices (names stay unchanged)."""
    out = nn.ModuleList()
    for i in kept:
        out.add_module(str(i), layers[i])
    return out


def _own_children(module: nn.Module) -> nn.Module:
    """A shallow copy of ``module`` whose child slots can be reassigned on their own."""
    out = copy.copy(module)
    out._modules = dict(module._modules)
    return out


def model_shell(core: nn.Module) -> nn.Module:
    """A copy of ``core``'s module tree down to the decoder's children, sharing every layer,
    the tower and every weight: stages cut from shells of one model share nothing but
    what they hold (several stages per rank)."""
    shell, llm = _own_children(core), _own_children(core.llm)
    decoder = llm.get_decoder()
    slot = next(name for name, child in llm.named_children() if child is decoder)
    llm._modules[slot] = _own_children(decoder)
    shell._modules["llm"] = llm
    return shell


class MindVLStage(nn.Module):
    """A MindVL cut to stage ``index`` of ``num_stages``; ``forward`` runs one packed row.

    ``core`` is cut in place (pass a :func:`model_shell` to keep the whole model).
    """

    def __init__(self, core: nn.Module, index: int, num_stages: int, layers: range) -> None:
        super().__init__()
        self.index, self.num_stages, self.layers = index, num_stages, layers
        self.first, self.last = index == 0, index == num_stages - 1
        self.config = core.config
        llm = core.llm
        decoder = llm.get_decoder()
        decoder.layers = _kept_layers(decoder.layers, layers)
        if getattr(decoder.config, "layer_types", None) is not None:
            # the decoder picks each layer's mask by its position in ``layers``
            decoder.config = copy.copy(decoder.config)
            decoder.config.layer_types = list(decoder.config.layer_types)[
                layers.start : layers.stop
            ]
        if not self.first:
            decoder.embed_tokens = None
            core.vision, core.projector = None, None
        if not self.last:
            decoder.norm = nn.Identity()
            llm.lm_head = None
        self.vision, self.projector, self.llm = core.vision, core.projector, llm
        self._core = [core]  # not a submodule: its embed() and attention backend
        self.router = RouterCarry.for_stage(core.moe, layers) if core.moe is not None else None

    @property
    def core(self) -> nn.Module:
        return self._core[0]

    def train(self, mode: bool = True) -> MindVLStage:
        self.core.training = mode  # MindVL.embed's dummy image for text-only rows
        return super().train(mode)

    def forward(self, *acts, position_ids, segment_ids, labels):
        core = self.core
        split = core.row_split  # context parallelism: this rank's slice of the row
        cu = cu_seqlens_of(segment_ids)
        total = position_ids.shape[-1]
        positions = split.local(position_ids) if split is not None else position_ids
        if self.first:
            input_ids, pixels, grid = acts
            # (under cp: this rank's slice of the row)
            hidden = core.embed(_row_batch(input_ids, pixels, grid, position_ids, labels, cu))
            carry = self.router.empty(total, hidden.device) if self.router else ()
        else:
            hidden, *carry = acts
        kwargs = core.attention_backend.llm_kwargs(cu, total, hidden.device)
        decoder = self.llm.get_decoder()

        def run(h):
            out = decoder(inputs_embeds=h, position_ids=positions, use_cache=False, **kwargs)
            return out.last_hidden_state

        if self.router is not None and self.router.rows:
            with core._router_tap.recording() as records:
                hidden = run(hidden)
            # the carry holds the whole row on every cp and tp rank
            carry = self.router.add(carry, core.full_row_records(records), cu[-1])
        else:
            hidden = run(hidden)
        if not self.last:
            return (hidden, *carry)
        head = self.llm.get_output_embeddings()
        targets = next_token_targets(labels, cu)
        if split is not None:
            targets = split.local(targets[None])[0]
        loss_sum, _ = summed_target_loss(hidden, targets, head)
        if hasattr(loss_sum, "to_local"):  # tensor parallel: replicated over tp
            loss_sum = loss_sum.to_local()
        # shape (1,): the schedule concatenates the rows' outputs after the step
        if self.router is None:
            return loss_sum.reshape(1)
        aux_sum, z_sum = self.router.losses(carry, cu)
        return loss_sum.reshape(1), aux_sum.reshape(1), z_sum.reshape(1), carry[-1]


def _row_batch(input_ids, pixels, grid, position_ids, labels, cu) -> PackedBatch:
    """The first stage's packed row with its padded images cut back to their real size."""
    grid = grid.reshape(-1, 3)
    n_images = int((grid[:, 0] > 0).sum())
    grid = grid[:n_images]
    patches = int(grid.prod(-1).sum()) if n_images else 0
    return PackedBatch(
        input_ids=input_ids,
        labels=labels,
        position_ids=position_ids,
        cu_seqlens=cu,
        pixel_values=pixels.reshape(-1, pixels.shape[-1])[:patches] if n_images else None,
        image_grid_thw=grid if n_images else None,
    )

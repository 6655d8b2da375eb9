"""MindVL: native-resolution ViT -> MLP projector -> any Hugging Face causal LM.

The vision tower is Qwen2.5-VL's (14px patches, 2D RoPE, window attention), without its
own merger: 2x2 blocks of patch features are concatenated and projected by
:class:`~mindvl.trainer.model.projector.Projector`. Image features replace the
``<|image_pad|>`` embeddings of the packed row in order, and the LLM runs on
``inputs_embeds`` with position ids restarting per sample. How packed samples are kept
apart inside attention is the job of the attached
:class:`~mindvl.trainer.device.attention.AttentionBackend` (default: one SDPA call per
packed segment, no T x T mask), so this file stays single-device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mindvl.trainer.batch import PackedBatch
from mindvl.trainer.device.attention import AttentionBackend, make_backend
from mindvl.trainer.model.config import MindVLConfig
from mindvl.trainer.model.loss import next_token_targets, summed_target_loss
from mindvl.trainer.model.moe import RouterTap, moe_layout
from mindvl.trainer.model.moe_loss import RouterStats, router_stats
from mindvl.trainer.model.projector import MergeView, Projector

PARTS = ("vision", "projector", "llm")


class ImageTokenMismatch(ValueError):
    """The row's ``<|image_pad|>`` count differs from the images' merged token count."""


@dataclass
class ModelOutput:
    # under ``row_split`` (context parallel) the loss and logits are this rank's slice's
    loss_sum: torch.Tensor  # sum of token cross-entropies (fp32 scalar)
    loss_tokens: int  # tokens that carried loss; divide by the GLOBAL batch's count
    logits: torch.Tensor | None = None  # (1, T, vocab) when asked for
    router: RouterStats | None = None  # MoE LLMs: balancing/z-loss sums, expert counts


# A pytree node, so FSDP2 finds the output tensors to hook its pre-backward unshard on.
torch.utils._pytree.register_dataclass(ModelOutput)


def build_vision(vision: dict):
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel,
    )

    cfg = Qwen2_5_VLVisionConfig.from_dict(dict(vision))
    tower = Qwen2_5_VisionTransformerPretrainedModel._from_config(cfg)
    strip_merger(tower)
    return tower


def strip_merger(tower) -> None:
    """Replace the tower's trained merger by a parameter-free 2x2 grouping (see MergeView)."""
    tower.merger = MergeView(tower.config.spatial_merge_size**2)


def build_llm(llm: dict):
    from transformers import AutoConfig, AutoModelForCausalLM

    data = dict(llm)
    cfg = AutoConfig.for_model(data.pop("model_type"), **data)
    return AutoModelForCausalLM.from_config(cfg)


class MindVL(nn.Module):
    """The whole model; ``forward(PackedBatch) -> ModelOutput`` (summed loss + token count)."""

    def __init__(self, config: MindVLConfig, vision=None, llm=None) -> None:
        super().__init__()
        self.config = config
        self.vision = vision if vision is not None else build_vision(config.vision)
        self.llm = llm if llm is not None else build_llm(config.llm)
        vocab = self.llm.get_input_embeddings().num_embeddings
        if not 0 <= config.image_pad_token_id < vocab:
            raise ValueError(
                f"image_pad_token_id {config.image_pad_token_id} outside vocab {vocab}"
            )
        vision_cfg = self.vision.config
        self.merge_unit = vision_cfg.spatial_merge_size**2
        self.projector = Projector(
            vision_cfg.hidden_size * self.merge_unit,
            config.projector_hidden,
            self.llm.get_input_embeddings().embedding_dim,
            norm=config.projector_norm,
            unit=self.merge_unit,
        )
        self.attention_backend: AttentionBackend = make_backend("segments")
        self.vision.config._attn_implementation = self.attention_backend.vision_implementation
        self.llm.config._attn_implementation = self.attention_backend.llm_implementation
        self.moe = moe_layout(self.llm)  # None for a dense LLM
        self._router_tap = RouterTap(self.llm) if self.moe is not None else None
        # Context parallelism (device/context_parallel.py) attaches this rank's part of every
        # row: the LLM then runs on a slice of the padded row, the loss sums that slice's
        # tokens and the router losses see the whole row. None: the whole row here.
        self.row_split = None
        # Tensor parallelism (device/tensor_parallel.py) attaches the tp shards of a row when
        # the MoE blocks route each tp rank's own tokens. None: routed on the whole row.
        self.tp_rows = None

    # ---- construction and persistence (implemented in model/checkpoint_io.py) ----
    @classmethod
    def from_config(cls, config: MindVLConfig) -> MindVL:
        """Random initialisation from configs (tests, from-scratch runs)."""
        return cls(config)

    @classmethod
    def from_parts(
        cls, vision_path, llm_path, projector_hidden: int, image_pad_token_id: int, dtype=None
    ) -> MindVL:
        """A new model from a local Qwen2.5-VL checkpoint's tower and a local causal LM."""
        from mindvl.trainer.model.checkpoint_io import build_from_parts

        return build_from_parts(
            vision_path, llm_path, projector_hidden, image_pad_token_id, dtype or torch.bfloat16
        )

    @classmethod
    def from_pretrained(cls, path, device=None, dtype=None) -> MindVL:
        from mindvl.trainer.model.checkpoint_io import load_mindvl

        return load_mindvl(path, device=device, dtype=dtype)

    def save_pretrained(self, path, tokenizer=None, inference=None) -> None:
        from mindvl.trainer.model.checkpoint_io import save_mindvl

        save_mindvl(self, path, tokenizer=tokenizer, inference=inference)

    # ---- forward ----
    @property
    def dtype(self) -> torch.dtype:
        return self.projector.fc1.weight.dtype

    def image_features(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        """(sum t*h*w/4, llm_hidden): one projected feature per merged 2x2 patch block."""
        kwargs = self.attention_backend.vision_kwargs(grid_thw, self.vision.config)
        out = self.vision(pixel_values.to(self.dtype), grid_thw, **kwargs)
        return self.projector(out.pooler_output)

    def embed(self, batch: PackedBatch) -> torch.Tensor:
        """Token embeddings with image features scattered into the ``<|image_pad|>`` slots
        (under ``row_split``: of this rank's slice of the row only)."""
        ids = batch.input_ids
        slots = ids == self.config.image_pad_token_id
        n_slots = int(slots.sum())
        has_images = batch.image_grid_thw is not None and len(batch.image_grid_thw) > 0
        n_tokens = int(batch.image_grid_thw.prod(-1).sum()) // self.merge_unit if has_images else 0
        if n_slots != n_tokens:
            raise ImageTokenMismatch(
                f"packed row has {n_slots} <|image_pad|> tokens (id {self.config.image_pad_token_id})"
                f" but its {0 if not has_images else len(batch.image_grid_thw)} images give"
                f" {n_tokens} merged tokens (sum of t*h*w/{self.merge_unit} over image_grid_thw);"
                f" samples: {', '.join(batch.sample_keys[:5]) or '?'}"
            )
        split = self.row_split
        if split is not None:  # this rank's slice: its tokens, and the features of its slots
            before = int(slots[:, : split.start(ids.shape[1])].sum())
            ids, slots = split.local(ids), split.local(slots)
        embeds = self.llm.get_input_embeddings()(ids)
        if has_images:
            if split is not None:  # each cp rank runs the tower on its share of the images
                feats = split.image_features(self, batch.pixel_values, batch.image_grid_thw)
                feats = feats[before : before + int(slots.sum())]
            else:
                feats = self.image_features(batch.pixel_values, batch.image_grid_thw)
            mask = slots.unsqueeze(-1).expand_as(embeds)
            embeds = embeds.masked_scatter(mask, feats.to(embeds.dtype))
        elif self.training:
            # Every rank must run the same modules (FSDP all-gathers, DDP reducers): a
            # text-only row runs the tower on one tiny dummy image with zero weight.
            embeds = embeds + 0.0 * self._dummy_image_feature(ids.device).sum()
        return embeds

    def _dummy_image_feature(self, device) -> torch.Tensor:
        cfg = self.vision.config
        side = cfg.spatial_merge_size
        patch_dim = cfg.in_channels * cfg.temporal_patch_size * cfg.patch_size**2
        pixels = torch.zeros(side * side, patch_dim, device=device)
        grid = torch.tensor([[1, side, side]], device=device)
        return self.image_features(pixels, grid)

    def hidden_states(self, batch: PackedBatch) -> torch.Tensor:
        """Final hidden states of the row's tokens (of this rank's slice under ``row_split``)."""
        embeds, positions = self.embed(batch), batch.position_ids
        total = positions.shape[1]
        if self.row_split is not None:
            positions = self.row_split.local(positions)
        kwargs = self.attention_backend.llm_kwargs(batch.cu_seqlens, total, embeds.device)
        out = self.llm.get_decoder()(
            inputs_embeds=embeds, position_ids=positions, use_cache=False, **kwargs
        )
        return out.last_hidden_state

    def full_row_records(self, records: list) -> list:
        """The routers' (logits, picks) of the whole row from this rank's part: its tp
        shard (``tp_rows``) of its cp slice (``row_split``)."""
        for part in (self.tp_rows, self.row_split):
            if part is not None:
                records = part.full_row_records(records)
        return records

    def forward(self, batch: PackedBatch, return_logits: bool = False) -> ModelOutput:
        if batch.input_ids.shape[0] != 1:
            raise ValueError(
                f"PackedBatch rows must have batch size 1, got {batch.input_ids.shape}"
            )
        split = self.row_split
        if split is not None:
            batch = split.pad(batch)
        router = None
        if self._router_tap is None:
            hidden = self.hidden_states(batch)
        else:
            with self._router_tap.recording() as records:
                hidden = self.hidden_states(batch)
            router = router_stats(self.full_row_records(records), batch.cu_seqlens, self.moe)
        head = self.llm.get_output_embeddings()
        targets = next_token_targets(batch.labels, batch.cu_seqlens)
        if split is not None:
            targets = split.local(targets[None])[0]
        loss_sum, loss_tokens = summed_target_loss(hidden, targets, head)
        logits = head(hidden) if return_logits else None
        return ModelOutput(loss_sum, loss_tokens, logits=logits, router=router)

"""The packed micro-batch: the one interface between the loader and the model.

Several samples are laid end to end in one row of ``seq_len`` LLM tokens (then padding).
``cu_seqlens`` (cumulative sample lengths with a leading 0, host-side ints) marks the
boundaries: position ids restart at 0 for each sample and attention is block-diagonal
causal, so packed samples never see each other. Images of all samples are concatenated in
order as flattened 14px patches (Qwen-VL layout); ``image_grid_thw`` holds one (t, h, w)
row per image, and the image's merged tokens fill the ``<|image_pad|>`` slots in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # (1, T) long
    labels: torch.Tensor  # (1, T) long, -100 where no loss
    position_ids: torch.Tensor  # (1, T) long, restarting at 0 per sample
    cu_seqlens: list[int]  # [0, len0, len0+len1, ...]; last == real tokens (padding after it)
    pixel_values: torch.Tensor | None = None  # (sum t*h*w, 3*2*14*14) float
    image_grid_thw: torch.Tensor | None = None  # (n_images, 3) long
    sample_keys: list[str] = field(default_factory=list)

    @property
    def real_tokens(self) -> int:
        return self.cu_seqlens[-1]

    @property
    def loss_tokens(self) -> int:
        return int((self.labels != -100).sum())

    def to(self, device: torch.device | str) -> PackedBatch:
        def move(t):
            return None if t is None else t.to(device, non_blocking=True)

        return PackedBatch(
            input_ids=move(self.input_ids),
            labels=move(self.labels),
            position_ids=move(self.position_ids),
            cu_seqlens=list(self.cu_seqlens),
            pixel_values=move(self.pixel_values),
            image_grid_thw=move(self.image_grid_thw),
            sample_keys=list(self.sample_keys),
        )

"""The vision-to-language projector over 2x2-merged patch features."""

from __future__ import annotations

import torch
from torch import nn


class MergeView(nn.Module):
    """Stands in for the tower's own merger: groups each 2x2 block of patches into one row.

    The Qwen2.5-VL tower orders patches so that every ``merge_size**2`` consecutive rows
    form one 2x2 block, and un-permutes its window order after calling ``merger``; with
    this module there it returns (tokens, 4 * vision_hidden) in image order, and the
    trainable projection lives in :class:`Projector` instead.
    """

    def __init__(self, unit: int) -> None:
        super().__init__()
        self.unit = unit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, x.shape[-1] * self.unit)


class Projector(nn.Module):
    """LayerNorm -> Linear(4*vision_hidden -> hidden) -> GELU -> Linear(hidden -> llm_hidden)."""

    def __init__(self, merged_dim: int, hidden: int, llm_hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(merged_dim)
        self.fc1 = nn.Linear(merged_dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, llm_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))

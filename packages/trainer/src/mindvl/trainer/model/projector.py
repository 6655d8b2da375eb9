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


class PatchRMSNorm(nn.Module):
    """RMSNorm over each patch's features inside a merged row, computed in fp32: Qwen2.5-VL's
    merger norm (``ln_q``), so a Qwen2.5-VL merger is this projector exactly."""

    def __init__(self, patch_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(patch_dim))
        self.eps = eps

    def reset_parameters(self) -> None:  # meta-device init (device/materialize.py)
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape, dtype = x.shape, x.dtype
        x = x.reshape(*shape[:-1], -1, self.weight.shape[0]).to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (self.weight * x.to(dtype)).reshape(shape)


class Projector(nn.Module):
    """norm -> Linear(4*vision_hidden -> hidden) -> GELU -> Linear(hidden -> llm_hidden).

    ``norm="layernorm"``: one LayerNorm over the merged row (mindvl's default);
    ``"patch_rmsnorm"``: RMSNorm per patch, Qwen2.5-VL's merger (imported Qwen2.5-VL models).
    """

    def __init__(
        self, merged_dim: int, hidden: int, llm_hidden: int, norm: str = "layernorm", unit: int = 4
    ) -> None:
        super().__init__()
        if norm == "layernorm":
            self.norm: nn.Module = nn.LayerNorm(merged_dim)
        elif norm == "patch_rmsnorm":
            self.norm = PatchRMSNorm(merged_dim // unit)
        else:
            raise ValueError(f"unknown projector norm {norm!r} (layernorm, patch_rmsnorm)")
        self.fc1 = nn.Linear(merged_dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, llm_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))

"""The vision tower's patch embedding as one matmul.

Qwen2.5-VL embeds each flattened patch (channels x 2 frames x 14 x 14 values) with a Conv3d
whose kernel equals its stride and covers the whole patch, so the convolution is exactly
``patches @ W.T`` with ``W`` the kernel flattened in the same (channel, frame, row, column)
order. As a Conv3d it goes through the convolution kernels (on the CPU oneDNN's conv3d, its
backward pass a large share of a small model's step: docs/BENCHMARKS.md), as a matmul it is
one GEMM. The Conv3d module stays in place as the parameter's owner, so state dicts,
checkpoints and Hugging Face import/export keep ``patch_embed.proj.weight`` unchanged (vLLM
makes the same substitution for this layer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MatmulPatchEmbed(nn.Module):
    """Stands in for ``Qwen2_5_VisionPatchEmbed``: same ``proj`` (Conv3d) and attributes,
    forward as a linear map of the flattened patches."""

    def __init__(self, embed: nn.Module) -> None:
        super().__init__()
        proj = embed.proj
        if tuple(proj.kernel_size) != tuple(proj.stride) or proj.bias is not None:
            raise ValueError(
                f"patch embedding is not one whole-patch projection: kernel {proj.kernel_size},"
                f" stride {proj.stride}, bias {proj.bias is not None}"
            )
        self.proj = proj
        self.patch_size = embed.patch_size
        self.temporal_patch_size = embed.temporal_patch_size
        self.in_channels = embed.in_channels
        self.embed_dim = embed.embed_dim

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        weight = self.proj.weight
        flat = weight.reshape(weight.shape[0], -1)
        return F.linear(hidden_states.reshape(-1, flat.shape[1]).to(weight.dtype), flat)


def use_matmul_patch_embed(tower: nn.Module) -> None:
    """Swap the tower's patch embedding for :class:`MatmulPatchEmbed` (idempotent)."""
    if not isinstance(tower.patch_embed, MatmulPatchEmbed):
        tower.patch_embed = MatmulPatchEmbed(tower.patch_embed)

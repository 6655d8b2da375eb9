"""The tower's patch embedding as a matmul gives the Conv3d's outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionPatchEmbed

from mindvl.trainer.model import MindVL
from mindvl.trainer.model.patch_embed import MatmulPatchEmbed
from mindvl.trainer.model.tiny import tiny_config


def test_matmul_patch_embed_matches_the_conv3d_forward_and_backward():
    torch.manual_seed(0)
    conv = Qwen2_5_VisionPatchEmbed(patch_size=14, temporal_patch_size=2, embed_dim=16)
    patches = torch.randn(37, 3 * 2 * 14 * 14)
    want = conv(patches)
    want.square().sum().backward()
    want_grad = conv.proj.weight.grad.clone()
    conv.proj.weight.grad = None

    mm = MatmulPatchEmbed(conv)
    assert mm.proj is conv.proj  # the same parameter: state dicts do not change
    got = mm(patches)
    got.square().sum().backward()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.proj.weight.grad, want_grad, rtol=1e-4, atol=1e-4)


def test_mindvl_uses_it_and_keeps_the_state_dict_keys():
    model = MindVL.from_config(tiny_config(64, 5))
    assert isinstance(model.vision.patch_embed, MatmulPatchEmbed)
    assert "vision.patch_embed.proj.weight" in model.state_dict()


def test_a_convolution_that_is_not_one_projection_per_patch_is_refused():
    embed = Qwen2_5_VisionPatchEmbed(patch_size=14, temporal_patch_size=2, embed_dim=16)
    embed.proj = nn.Conv3d(3, 16, kernel_size=(2, 14, 14), stride=(1, 7, 7), bias=False)
    with pytest.raises(ValueError, match="not one whole-patch projection"):
        MatmulPatchEmbed(embed)

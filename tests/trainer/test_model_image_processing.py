"""Our patchify equals transformers' Qwen2VLImageProcessor on the same resized image."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from mindvl.common.tokens import ImageTokenRule
from mindvl.trainer.model.image_processing import patchify, preprocess_images, resize_for_rule


def random_image(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("size", [(100, 60), (57, 230), (28, 28)])
def test_patches_match_qwen2vl_image_processor(size):
    from transformers import Qwen2VLImageProcessor

    rule = ImageTokenRule(min_pixels=4 * 28 * 28, max_pixels=64 * 28 * 28)
    resized = resize_for_rule(random_image(*size, seed=size[0]), rule)
    assert resized.size == rule.resized(*size)
    ours, grid = patchify(resized)

    proc = Qwen2VLImageProcessor(do_resize=False)
    theirs = proc(images=[resized], return_tensors="pt")
    assert grid == tuple(theirs["image_grid_thw"][0].tolist())
    torch.testing.assert_close(ours, theirs["pixel_values"].float(), atol=1e-5, rtol=1e-5)


def test_token_count_matches_rule():
    rule = ImageTokenRule(min_pixels=4 * 28 * 28, max_pixels=32 * 28 * 28)
    buf = io.BytesIO()
    random_image(300, 170, seed=1).save(buf, format="PNG")
    pixels, grid = preprocess_images([buf.getvalue(), random_image(50, 50, seed=2)], rule)
    assert grid.tolist()[0][0] == 1
    tokens = (grid.prod(-1) // 4).tolist()
    assert tokens == [rule.tokens(300, 170), rule.tokens(50, 50)]
    assert pixels.shape == (int(grid.prod(-1).sum()), 3 * 2 * 14 * 14)

"""Our patchify equals transformers' Qwen2VLImageProcessor on the same resized image."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from mindvl.common.tokens import ImageTokenRule
from mindvl.trainer.model.image_processing import (
    load_rgb,
    patchify,
    preprocess_images,
    resize_for_rule,
)


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


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_pictures_are_flattened_on_white_as_qwen2vl_and_the_data_engine_do(mode):
    """A black drawing on a transparent canvas whose hidden colour is black: dropping alpha
    (Pillow's ``convert("RGB")``) would give a black square. Ours composites onto white, as
    transformers' Qwen2-VL image processor and the data engine's features do."""
    from transformers import Qwen2VLImageProcessor

    from mindvl.data_engine.ops.image_decode import ImageDecodeParams, model_picture

    rgba = np.zeros((56, 84, 4), np.uint8)  # black everywhere, transparent
    rgba[14:42, 28:56, 3] = 255  # an opaque black square in the middle
    img = Image.fromarray(rgba, "RGBA")
    if mode == "LA":
        img = img.convert("LA")
    elif mode == "P":  # two black palette entries, index 1 keyed transparent
        img = Image.fromarray(np.where(rgba[..., 3] > 0, 0, 1).astype(np.uint8), "P")
        img.putpalette([0, 0, 0, 0, 0, 0])
    buf = io.BytesIO()
    img.save(buf, format="PNG", **({"transparency": 1} if mode == "P" else {}))
    data = buf.getvalue()
    flat = np.asarray(load_rgb(data))
    assert flat[0, 0].tolist() == [255, 255, 255] and flat[28, 42].tolist() == [0, 0, 0]
    assert (flat == np.asarray(model_picture(data, ImageDecodeParams()))).all()
    rule = ImageTokenRule(min_pixels=4 * 28 * 28, max_pixels=64 * 28 * 28)
    ours, _ = preprocess_images([data], rule)
    proc = Qwen2VLImageProcessor(do_resize=False)
    theirs = proc(images=[Image.open(io.BytesIO(data))], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(ours, theirs.float(), atol=1e-5, rtol=1e-5)

"""The one place the data path turns encoded image bytes into ViT input.

Images are resized under the manifest's native-resolution rule (the same
:func:`mindvl.common.tokens.smart_resize` that counted their tokens), normalised and cut
into flattened 14px patches in the Qwen-VL layout: rows ordered by 2x2 merge window so
the merger can fold 4 consecutive rows into one LLM token; each row is
``3 * temporal_patch(2) * 14 * 14`` values.
"""

from __future__ import annotations

import io

import numpy as np
import torch

from mindvl.common.tokens import MERGE_SIZE, PATCH_SIZE, ImageTokenRule

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
TEMPORAL_PATCH = 2


def _patches(pixels: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(H, W, 3) float -> ((gh*gw), 3*2*14*14) rows and the (t, gh, gw) grid."""
    h, w, _ = pixels.shape
    gh, gw = h // PATCH_SIZE, w // PATCH_SIZE
    chw = np.transpose(pixels, (2, 0, 1))
    frames = np.stack([chw] * TEMPORAL_PATCH)  # a still image fills both temporal slots
    m = MERGE_SIZE
    x = frames.reshape(1, TEMPORAL_PATCH, 3, gh // m, m, PATCH_SIZE, gw // m, m, PATCH_SIZE)
    x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gh * gw, 3 * TEMPORAL_PATCH * PATCH_SIZE * PATCH_SIZE), (1, gh, gw)


def preprocess_image(data: bytes, rule: ImageTokenRule) -> tuple[np.ndarray, tuple[int, int, int]]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB")
        w, h = rule.resized(*rgb.size)
        rgb = rgb.resize((w, h), Image.Resampling.BICUBIC)
        pixels = (np.asarray(rgb, dtype=np.float32) / 255.0 - MEAN) / STD
    return _patches(pixels)


def preprocess_images(
    images: list[bytes], rule: ImageTokenRule
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``pixel_values`` (sum t*h*w, 1176) and ``image_grid_thw`` (n, 3) for a pack's images."""
    if not images:
        return None, None
    rows, grids = [], []
    for data in images:
        r, g = preprocess_image(data, rule)
        rows.append(r)
        grids.append(g)
    return torch.from_numpy(np.concatenate(rows)), torch.tensor(grids, dtype=torch.long)

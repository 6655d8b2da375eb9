"""Images -> (patches, grid) for the vision tower, with the shared native-resolution rule.

The resize uses :func:`mindvl.common.tokens.smart_resize` (via ``ImageTokenRule``), the
same function the data engine counted tokens with, so an image yields exactly the number
of ``<|image_pad|>`` tokens its manifest entry promised. Normalisation (CLIP mean/std) and
the patch order (temporal_patch_size 2 by repeating the still frame; 2x2 merge blocks
contiguous) follow Qwen2-VL, whose vision tower expects them.
"""

from __future__ import annotations

import io

import numpy as np
import torch

from mindvl.common.pictures import flatten_to_rgb
from mindvl.common.tokens import MERGE_SIZE, PATCH_SIZE, ImageTokenRule

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TEMPORAL_PATCH_SIZE = 2
PATCH_DIM = 3 * TEMPORAL_PATCH_SIZE * PATCH_SIZE * PATCH_SIZE


def load_rgb(image):
    """PIL RGB image from encoded bytes or a PIL image, transparency composited onto white
    (``flatten_to_rgb``: as the data engine fingerprinted it and as transformers'
    ``convert_to_rgb`` gives it to Qwen2-VL)."""
    from PIL import Image

    if isinstance(image, (bytes, bytearray, memoryview)):
        image = Image.open(io.BytesIO(bytes(image)))
    return flatten_to_rgb(image)


def resize_for_rule(image, rule: ImageTokenRule):
    """Bicubic resize to the rule's target size (both sides multiples of 28)."""
    from PIL import Image

    width, height = rule.resized(*image.size)
    if (width, height) == image.size:
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)


def patchify(image) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """An already resized RGB image -> ((h/14)*(w/14), 1176) float patches and (1, h/14, w/14)."""
    arr = np.asarray(image, dtype=np.float32) / 255.0  # (H, W, 3)
    arr = (arr - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    height, width = arr.shape[:2]
    if height % (PATCH_SIZE * MERGE_SIZE) or width % (PATCH_SIZE * MERGE_SIZE):
        raise ValueError(f"image {width}x{height} is not resized to multiples of 28")
    gh, gw = height // PATCH_SIZE, width // PATCH_SIZE
    x = torch.from_numpy(arr).permute(2, 0, 1)  # (C, H, W)
    x = x.unsqueeze(0).expand(TEMPORAL_PATCH_SIZE, -1, -1, -1)  # a still frame, twice
    x = x.reshape(
        1,
        TEMPORAL_PATCH_SIZE,
        3,
        gh // MERGE_SIZE,
        MERGE_SIZE,
        PATCH_SIZE,
        gw // MERGE_SIZE,
        MERGE_SIZE,
        PATCH_SIZE,
    )
    # (t, gh/2, gw/2, 2, 2 | C, T, p, p): 2x2 merge blocks contiguous, channel-major patches
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gh * gw, PATCH_DIM).contiguous(), (1, gh, gw)


def preprocess_images(images: list, rule: ImageTokenRule) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoded images (or PIL) -> (pixel_values (sum t*h*w, 1176), image_grid_thw (n, 3))."""
    patches, grids = [], []
    for image in images:
        p, grid = patchify(resize_for_rule(load_rgb(image), rule))
        patches.append(p)
        grids.append(grid)
    if not patches:
        return torch.zeros(0, PATCH_DIM), torch.zeros(0, 3, dtype=torch.long)
    return torch.cat(patches), torch.tensor(grids, dtype=torch.long)

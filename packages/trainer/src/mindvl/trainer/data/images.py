"""The one place the data path turns a pack's encoded images into ViT input.

It calls the model's own preprocessing (:mod:`mindvl.trainer.model.image_processing`):
resize under the manifest's native-resolution rule (the same ``smart_resize`` that counted
the tokens), CLIP normalisation, Qwen-VL patch order. A text-only pack gets ``None``.
"""

from __future__ import annotations

import torch

from mindvl.common.tokens import ImageTokenRule


def preprocess_images(
    images: list[bytes], rule: ImageTokenRule
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``pixel_values`` (sum t*h*w, 1176) and ``image_grid_thw`` (n, 3), or (None, None)."""
    if not images:
        return None, None
    from mindvl.trainer.model.image_processing import preprocess_images as model_preprocess

    return model_preprocess(images, rule)

"""The ``mindvl`` caption backend: the data engine captions with a MindVL checkpoint.

Registered under the ``mindvl.caption_backends`` entry point, so the data engine loads it
by name without importing the trainer. Images are tokenised with the checkpoint's
``inference.json`` rule, prompts rendered as in training, decoding is greedy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class MindVLCaptionBackend:
    """``MindVLCaptionBackend(model_path, device)`` with ``device`` cpu|cuda|npu."""

    def __init__(self, model_path: str, device: str = "cpu") -> None:
        import torch

        from mindvl.common.caption_backend import weights_digest
        from mindvl.common.text_tokens import TextTokenizer
        from mindvl.trainer.device.attention import apply_attention_backend, default_backend_name
        from mindvl.trainer.device.select import select_device
        from mindvl.trainer.model import MindVL
        from mindvl.trainer.model.checkpoint_io import read_inference

        choice = select_device(device)
        path = Path(model_path)
        self.model_id = path.resolve().name
        self.weights_digest = weights_digest(path)
        dtype = torch.float32 if choice.type == "cpu" else torch.bfloat16
        self.model = MindVL.from_pretrained(path, device=choice.device(), dtype=dtype).eval()
        apply_attention_backend(self.model, default_backend_name(choice.device()))
        self.tokenizer = TextTokenizer.from_path(path)
        self.rule = read_inference(path).image_tokens

    def generate(
        self, images: list[bytes], prompts: list[str], generation: dict[str, Any]
    ) -> list[str]:
        from mindvl.trainer.model.generate import generate

        return generate(self.model, self.tokenizer, images, prompts, self.rule, generation)

"""The ``hf`` caption backend: any local Hugging Face image-text-to-text checkpoint.

Loaded with ``AutoProcessor`` + ``AutoModelForImageTextToText`` from a local folder only
(``local_files_only=True``: a build never downloads). Generation is batched with left
padding and greedy unless the recipe's ``caption.generation`` says otherwise.

Without torchvision, transformers 5.x cannot build the Qwen-VL processors (their video
processor needs it) even for images. The backend then composes the processor from its
parts: the checkpoint's tokenizer + image processor, expanding each image placeholder to
``grid_t*grid_h*grid_w / merge_size**2`` tokens itself, as the Qwen-VL processors do.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

from mindvl.common.caption_backend import weights_digest
from mindvl.common.pictures import flatten_to_rgb
from mindvl.data_engine.device import require_torch

log = logging.getLogger(__name__)

DEFAULT_GENERATION: dict[str, Any] = {"max_new_tokens": 32, "do_sample": False}


class _ComposedProcessor:
    """Tokenizer + image processor doing what a Qwen-VL processor does for images."""

    def __init__(self, path: str, image_token_id: int) -> None:
        from transformers import AutoImageProcessor, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.image_processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        self.image_token_id = image_token_id
        self.image_token = self.tokenizer.convert_ids_to_tokens(image_token_id)
        self.merge = int(getattr(self.image_processor, "merge_size", 1))

    def apply_chat_template(self, messages: list[dict[str, Any]], **kw: Any) -> str:
        return self.tokenizer.apply_chat_template(messages, **kw)

    def __call__(self, text: list[str], images: list[Any], **kw: Any) -> dict[str, Any]:
        vision = self.image_processor(images=images, return_tensors="pt")
        counts = (vision["image_grid_thw"].prod(-1) // self.merge**2).tolist()
        text = [
            t.replace(self.image_token, self.image_token * n, 1)
            for t, n in zip(text, counts, strict=True)
        ]
        enc = self.tokenizer(text, padding=True, return_tensors="pt")
        return {
            **enc,
            **vision,
            "mm_token_type_ids": (enc["input_ids"] == self.image_token_id).int(),
        }


class HFCaptionBackend:
    """``HFCaptionBackend(model_path, device)``; one per actor, holding the model."""

    def __init__(self, model_path: str, device: str = "cpu") -> None:
        require_torch("the hf caption backend")
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if device == "npu":
            import torch_npu  # noqa: F401  (registers the npu device)
        path = str(model_path)
        self.model_id = Path(path).resolve().name
        self.weights_digest = weights_digest(path)
        self.device = device
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
        self.model = AutoModelForImageTextToText.from_pretrained(
            path, local_files_only=True, dtype=dtype
        ).to(device)
        self.model.eval()
        try:
            self.processor: Any = AutoProcessor.from_pretrained(path, local_files_only=True)
        except ImportError as err:  # typically torchvision missing for the video processor
            log.info("AutoProcessor unavailable (%s); composing tokenizer + image processor", err)
            self.processor = _ComposedProcessor(path, int(self.model.config.image_token_id))
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"  # generation continues from the right edge
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    def _decode(self, data: bytes) -> Any:
        from PIL import Image

        return flatten_to_rgb(Image.open(io.BytesIO(data)))  # in memory: nothing to close

    def generate(
        self, images: list[bytes], prompts: list[str], generation: dict[str, Any]
    ) -> list[str]:
        import torch

        pil = [self._decode(b) for b in images]
        texts = [
            self.processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p}]}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for p in prompts
        ]
        inputs = self.processor(text=texts, images=pil, padding=True, return_tensors="pt")
        inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        params = {**DEFAULT_GENERATION, **generation}
        try:
            with torch.inference_mode():
                out = self.model.generate(**inputs, **params)
        except torch.OutOfMemoryError:
            if self.device == "cuda":
                torch.cuda.empty_cache()  # let the halved retry start from a clean pool
            raise
        new = out[:, inputs["input_ids"].shape[1] :]
        return self.processor.tokenizer.batch_decode(new, skip_special_tokens=True)

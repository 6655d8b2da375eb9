"""Image-text alignment: drop samples whose caption does not match their image(s).

A CLIP-style model (``CLIPModel`` + its tokenizer and image processor, as saved by
``save_pretrained``) is loaded from a LOCAL directory only, once per Ray actor
(``uses_actor``), on the device the actor was given (``num_gpus`` / ``npus`` params set the
actor's resources). The score of a sample is the lowest cosine similarity between the
text embedding and any of its images' embeddings (a multi-image sample is only as aligned
as its worst image); it is kept in ``candidate.meta["clip_score"]``. The text is the
judged turns (``judge``, default the caption / assistant turns: the description, not the
question). Images are decoded again here: a model needs pixels, and rows carry only
encoded bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from mindvl.common.config import StrictModel
from mindvl.common.errors import UserError
from mindvl.data_engine.device import pick_device, require_torch
from mindvl.data_engine.ops.base import JudgedTextParams, OpContext, Operator, judged_text
from mindvl.data_engine.ops.image_decode import ImageDecodeParams, model_picture
from mindvl.data_engine.ops.image_open import DEFAULT_DECODE_BYTES, DecodeFailure
from mindvl.data_engine.record import Candidate


class ClipScoreParams(JudgedTextParams):
    model: str = Field(description="local directory of a CLIP model, tokenizer, image processor")
    min_score: float = Field(default=0.2, ge=-1.0, le=1.0, description="min cosine similarity")
    device: Literal["auto", "cpu", "cuda", "npu"] = "auto"
    num_gpus: float = Field(default=0.0, ge=0.0, description="GPUs per actor")
    npus: float = Field(default=0.0, ge=0.0, description="Ascend NPUs per actor (custom resource)")
    max_decode_bytes: int = Field(
        default=DEFAULT_DECODE_BYTES, gt=0, description="decode budget, as image_decode's"
    )
    max_pixels_cap: int | None = Field(
        default=None, gt=0, description="drop images whose header claims more pixels"
    )


class ClipScorer:
    """The loaded model; ``scores(images, texts)`` gives one cosine per (image, text) pair."""

    def __init__(self, path: str, device: str) -> None:
        require_torch("clip_score")
        import torch
        import transformers

        processor_cls = getattr(transformers, "CLIPImageProcessorPil", None)
        processor_cls = processor_cls or transformers.CLIPImageProcessor  # no torchvision needed
        try:
            self.model = transformers.CLIPModel.from_pretrained(path, local_files_only=True)
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.processor = processor_cls.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as err:
            first = " ".join(str(err).split())[:200]
            raise UserError(f"clip_score: cannot load a CLIP model from {path}: {first}") from None
        self.device = torch.device(pick_device(device))
        self.model.to(self.device).eval()
        self.max_tokens = self.model.config.text_config.max_position_embeddings

    def scores(self, images: list[Any], texts: list[str]) -> list[float]:
        import torch

        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        with torch.inference_mode():
            img = self.model.get_image_features(pixel_values=pixels.to(self.device))
            txt = self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device),
            )
            img = getattr(img, "pooler_output", img)  # transformers 5 may return an output object
            txt = getattr(txt, "pooler_output", txt)
            cos = torch.nn.functional.cosine_similarity(img.float(), txt.float(), dim=-1)
        return [float(x) for x in cos.cpu()]


class ClipScore(Operator):
    """Reason ``low_clip_score`` when the lowest image-text cosine is below ``min_score``."""

    name = "clip_score"
    Params = ClipScoreParams
    uses_actor = True

    def __init__(self, params: StrictModel | None = None, context: OpContext | None = None) -> None:
        super().__init__(params, context)
        p = self.params
        if not Path(p.model).is_dir():
            raise UserError(f"clip_score: model directory not found: {p.model}")
        self.resources: dict[str, Any] = {"num_cpus": 1}
        if p.num_gpus:
            self.resources["num_gpus"] = p.num_gpus
        if p.npus:
            self.resources["resources"] = {"NPU": p.npus}
        self._scorer: ClipScorer | None = None

    @property
    def scorer(self) -> ClipScorer:
        if self._scorer is None:
            self._scorer = ClipScorer(self.params.model, self.params.device)
        return self._scorer

    def __call__(self, candidate: Candidate) -> str | None:
        if not candidate.images:
            return None  # text-only sample: nothing to align
        text = judged_text(candidate, self.params.judge)
        if not text.strip():
            return None  # nothing to align the images with
        pictures = []
        for im in candidate.images:
            decode = ImageDecodeParams(
                max_decode_bytes=self.params.max_decode_bytes,
                max_pixels_cap=self.params.max_pixels_cap,
            )
            try:
                pictures.append(model_picture(im.data, decode))
            except DecodeFailure as failure:
                return str(failure)
        score = min(self.scorer.scores(pictures, [text] * len(pictures)))
        candidate.meta["clip_score"] = round(score, 6)
        return None if score >= self.params.min_score else "low_clip_score"

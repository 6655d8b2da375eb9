"""The MindVL architecture record, saved as ``config.json`` next to the weights."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from mindvl.common.config import StrictModel
from mindvl.common.tokens import ImageTokenRule

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INFERENCE_NAME = "inference.json"
MODEL_TYPE = "mindvl"
ARCHITECTURE = "MindVLForConditionalGeneration"  # the transformers class (model/hf_auto.py)


class MindVLConfig(StrictModel):
    """Full configs of both towers (transformers ``to_dict()`` form) plus the projector.

    ``vision`` holds a Qwen2.5-VL vision config; ``llm`` any causal-LM config with its
    ``model_type`` (qwen3, qwen2, llama, ...). Saved configs are complete, so a checkpoint
    reloads without the original pretrained parts.
    """

    model_type: Literal["mindvl"] = MODEL_TYPE
    architectures: list[str] = Field(default_factory=lambda: [ARCHITECTURE])
    vision: dict[str, Any]
    llm: dict[str, Any]
    projector_hidden: int = Field(gt=0)
    projector_norm: Literal["layernorm", "patch_rmsnorm"] = "layernorm"
    image_pad_token_id: int = Field(ge=0)
    dtype: str = "float32"


class InferenceConfig(StrictModel):
    """How images are tokenised at inference; the resolution search rewrites the rule."""

    image_tokens: ImageTokenRule = Field(default_factory=ImageTokenRule)
    max_new_tokens: int = Field(default=64, gt=0)

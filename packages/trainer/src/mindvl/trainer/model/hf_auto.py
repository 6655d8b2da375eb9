"""MindVL as a transformers model type (``model_type: mindvl``).

``import mindvl.trainer.model`` registers these with ``AutoConfig``, ``AutoModel``,
``AutoModelForImageTextToText`` and ``AutoModelForCausalLM``, so a mindvl checkpoint (its
``config.json`` names ``MindVLForConditionalGeneration``) loads through the Auto classes.
The class is a thin adapter over :class:`~mindvl.trainer.model.mindvl.MindVL`: weights are
read and written by mindvl's own checkpoint code; ``forward`` takes what a Qwen2.5-VL
processor gives (``input_ids``, ``attention_mask``, ``pixel_values``, ``image_grid_thw``)
and returns logits; ``generate`` returns the new tokens only (it runs the LLM on
``inputs_embeds``).
"""

from __future__ import annotations

import torch
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from mindvl.trainer.model.config import MODEL_TYPE, MindVLConfig
from mindvl.trainer.model.mindvl import MindVL


class MindVLHFConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(
        self,
        vision: dict | None = None,
        llm: dict | None = None,
        projector_hidden: int = 1,
        projector_norm: str = "layernorm",
        image_pad_token_id: int = 0,
        **kwargs,
    ) -> None:
        self.vision = dict(vision or {})
        self.llm = dict(llm or {})
        self.projector_hidden = projector_hidden
        self.projector_norm = projector_norm
        self.image_pad_token_id = image_pad_token_id
        super().__init__(**kwargs)

    def to_mindvl(self) -> MindVLConfig:
        return MindVLConfig(
            vision=self.vision,
            llm=self.llm,
            projector_hidden=self.projector_hidden,
            projector_norm=self.projector_norm,
            image_pad_token_id=self.image_pad_token_id,
        )


class MindVLForConditionalGeneration(PreTrainedModel):
    config_class = MindVLHFConfig
    base_model_prefix = "mindvl"

    def __init__(self, config: MindVLHFConfig, mindvl: MindVL | None = None) -> None:
        super().__init__(config)
        self.mindvl = mindvl if mindvl is not None else MindVL(config.to_mindvl())

    @classmethod
    def from_pretrained(cls, path, *args, config=None, dtype=None, device_map=None, **kwargs):
        """Loads with mindvl's checkpoint code; ``device_map`` may name one device
        (``"cpu"``, ``"cuda:0"``); ``"auto"`` and per-module maps load on the CPU."""
        from mindvl.trainer.model.checkpoint_io import load_mindvl

        if isinstance(dtype, str) and dtype != "auto":
            dtype = getattr(torch, dtype)
        device = device_map if isinstance(device_map, str) and device_map != "auto" else None
        model = load_mindvl(path, device=device, dtype=None if dtype == "auto" else dtype)
        config = (
            config if isinstance(config, MindVLHFConfig) else cls.config_class.from_pretrained(path)
        )
        return cls(config, mindvl=model).eval()

    def save_pretrained(self, path, *args, **kwargs) -> None:
        self.mindvl.save_pretrained(path)

    def get_input_embeddings(self):
        return self.mindvl.llm.get_input_embeddings()

    def _embeds(self, input_ids, pixel_values, image_grid_thw) -> torch.Tensor:
        embeds = self.mindvl.llm.get_input_embeddings()(input_ids)
        if pixel_values is not None:
            feats = self.mindvl.image_features(pixel_values, image_grid_thw)
            slots = (input_ids == self.mindvl.config.image_pad_token_id).unsqueeze(-1)
            embeds = embeds.masked_scatter(slots.expand_as(embeds), feats.to(embeds.dtype))
        return embeds

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        from mindvl.trainer.model.generate import plain_llm_attention

        embeds = self._embeds(input_ids, pixel_values, image_grid_thw)
        positions = None
        if attention_mask is not None:  # left padding: positions count real tokens only
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        with plain_llm_attention(self.mindvl):
            out = self.mindvl.llm(
                inputs_embeds=embeds, attention_mask=attention_mask, position_ids=positions
            )
        return CausalLMOutputWithPast(logits=out.logits)

    @torch.inference_mode()
    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
        **generation,
    ) -> torch.Tensor:
        from mindvl.trainer.model.generate import plain_llm_attention

        embeds = self._embeds(input_ids, pixel_values, image_grid_thw)
        with plain_llm_attention(self.mindvl):
            return self.mindvl.llm.generate(
                inputs_embeds=embeds, attention_mask=attention_mask, **generation
            )


def register() -> None:
    """Make ``model_type: mindvl`` known to transformers' Auto classes (idempotent)."""
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
    )
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if MODEL_TYPE in CONFIG_MAPPING:
        return
    AutoConfig.register(MODEL_TYPE, MindVLHFConfig)
    for auto in (AutoModel, AutoModelForImageTextToText, AutoModelForCausalLM):
        auto.register(MindVLHFConfig, MindVLForConditionalGeneration)

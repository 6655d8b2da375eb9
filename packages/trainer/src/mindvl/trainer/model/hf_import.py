"""Hugging Face checkpoints in: a vision tower + a causal LM, or a whole Qwen2.5-VL.

``assemble`` takes the vision tower of a local Qwen2.5-VL checkpoint and any local causal LM
(dense or MoE, sharded safetensors with an index are read by transformers itself) and adds
a fresh projector. ``import_qwen2_5_vl`` turns a Qwen2.5-VL checkpoint into a MindVL whose
projector *is* Qwen's merger (per-patch RMSNorm, MLP of width 4 x vision hidden) and whose
LLM is the Qwen2 text model, so the imported model computes what the original does when
both use 1D positions (mindvl's layout; see docs/ARCHITECTURE.md). The LLM's tokenizer is
saved with the checkpoint; mindvl's chat special tokens it lacks are added and the
embeddings grown for them. Everything reads local files only.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mindvl.common.chat import IMAGE_PAD, SPECIAL_TOKENS
from mindvl.common.errors import UserError
from mindvl.trainer.model.checkpoint_io import _clean, load_vision_tower, save_mindvl
from mindvl.trainer.model.config import InferenceConfig, MindVLConfig
from mindvl.trainer.model.mindvl import MindVL, strip_merger

TEXT_ONLY_KEYS = ("mrope_section",)


def load_tokenizer(path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as err:
        raise UserError(f"no tokenizer in {path}: {' '.join(str(err).split())[:200]}") from None


def add_chat_tokens(tokenizer, llm) -> list[str]:
    """Add mindvl's chat special tokens the tokenizer lacks; grow the LLM's embeddings (new
    rows at the mean of the old ones) when the vocabulary outgrows them. Returns the added."""
    missing = [
        t
        for t in SPECIAL_TOKENS
        if tokenizer.convert_tokens_to_ids(t) in (None, tokenizer.unk_token_id)
    ]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    if len(tokenizer) > llm.get_input_embeddings().num_embeddings:
        llm.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    return missing


def _finish(model: MindVL, tokenizer, out, inference: InferenceConfig | None) -> MindVL:
    save_mindvl(model, out, tokenizer=tokenizer, inference=inference)
    return model


def assemble(
    vision_path,
    llm_path,
    out,
    projector_hidden: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> MindVL:
    """Qwen2.5-VL tower from ``vision_path`` + causal LM from ``llm_path`` + new projector."""
    from transformers import AutoModelForCausalLM

    tower = load_vision_tower(vision_path)
    try:
        llm = AutoModelForCausalLM.from_pretrained(
            str(llm_path), local_files_only=True, dtype=dtype
        )
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load a causal LM from {llm_path}: {str(err)[:200]}") from None
    tokenizer = load_tokenizer(llm_path)
    add_chat_tokens(tokenizer, llm)
    merged = tower.config.hidden_size * tower.config.spatial_merge_size**2
    config = MindVLConfig(
        vision=_clean(tower.config.to_dict()),
        llm=_clean(llm.config.to_dict()),
        projector_hidden=projector_hidden or merged,
        image_pad_token_id=tokenizer.convert_tokens_to_ids(IMAGE_PAD),
    )
    model = MindVL(config, vision=tower.to(dtype), llm=llm).to(dtype)
    return _finish(model, tokenizer, out, None)


def qwen2_config_of(text_config) -> dict:
    """A Qwen2 causal-LM config (dict with ``model_type``) from a Qwen2.5-VL text config."""
    data = _clean(text_config.to_dict())
    data["model_type"] = "qwen2"
    rope = dict(data.get("rope_parameters") or {})
    for key in TEXT_ONLY_KEYS:
        rope.pop(key, None)
    if rope.get("rope_type") == "mrope":
        rope["rope_type"] = "default"
    data["rope_parameters"] = rope
    data.pop("rope_scaling", None)
    return data


def import_qwen2_5_vl(path, out, dtype: torch.dtype = torch.float32) -> MindVL:
    """A MindVL with the checkpoint's tower, its merger as the projector and its LLM."""
    from transformers import AutoConfig, AutoModelForCausalLM, Qwen2_5_VLForConditionalGeneration

    cfg = AutoConfig.from_pretrained(str(path), local_files_only=True)
    if cfg.model_type != "qwen2_5_vl":
        raise UserError(f"{path} is a {cfg.model_type!r} checkpoint, not Qwen2.5-VL")
    src = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        str(path), local_files_only=True, dtype=dtype
    )
    tokenizer = load_tokenizer(path)
    tower = src.model.visual
    merger = tower.merger
    llm = AutoModelForCausalLM.from_config(
        AutoConfig.for_model(**qwen2_config_of(cfg.text_config)), dtype=dtype
    )
    llm.model.load_state_dict(src.model.language_model.state_dict(), strict=True)
    if not llm.config.tie_word_embeddings:
        llm.lm_head.load_state_dict(src.lm_head.state_dict(), strict=True)
    strip_merger(tower)
    config = MindVLConfig(
        vision=_clean(tower.config.to_dict()),
        llm=_clean(llm.config.to_dict()),
        projector_hidden=merger.hidden_size,
        projector_norm="patch_rmsnorm",
        image_pad_token_id=cfg.image_token_id,
    )
    model = MindVL(config, vision=tower, llm=llm)
    model.projector.norm.weight.data.copy_(merger.ln_q.weight)
    model.projector.fc1.load_state_dict(merger.mlp[0].state_dict())
    model.projector.fc2.load_state_dict(merger.mlp[2].state_dict())
    add_chat_tokens(tokenizer, model.llm)
    model.to(dtype)
    return _finish(model, tokenizer, out, _inference_of(path))


def _inference_of(path) -> InferenceConfig | None:
    """The image token rule from the checkpoint's image processor (min/max pixels), if any."""
    import json

    for name in ("preprocessor_config.json", "processor_config.json"):
        p = Path(path) / name
        if not p.is_file():
            continue
        data = json.loads(p.read_text())
        data = data.get("image_processor", data)
        size = data.get("size") or {}
        lo = data.get("min_pixels") or size.get("shortest_edge")
        hi = data.get("max_pixels") or size.get("longest_edge")
        if lo and hi:
            from mindvl.common.tokens import ImageTokenRule

            return InferenceConfig(image_tokens=ImageTokenRule(min_pixels=lo, max_pixels=hi))
    return None

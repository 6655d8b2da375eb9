"""Hugging Face checkpoints out: ``mindvl model export CKPT --to hf -o OUT``.

A MindVL whose LLM is Qwen2 and whose projector is a Qwen2.5-VL merger (per-patch RMSNorm,
width 4 x vision hidden: what ``mindvl model import`` makes) becomes a plain
``Qwen2_5_VLForConditionalGeneration`` directory. Its tokenizer config sets
``return_mm_token_type_ids: false``, so the processor leaves out the token types that would
switch Qwen2.5-VL to 3D (mRoPE) positions for image tokens: positions stay 1D, as mindvl
trained them, and the logits are mindvl's. Any other MindVL is written as the ``mindvl``
model type that ``import mindvl.trainer.model`` registers with transformers' Auto classes.
Both get the same processor files: Qwen2-VL's image processor with the checkpoint's
min/max pixels, the tokenizer, and a chat template that renders prompts exactly as mindvl
does (``mindvl.common.chat``).
"""

from __future__ import annotations

import json
from pathlib import Path

from mindvl.common.chat import (
    END_OF_TEXT,
    IM_END,
    IM_START,
    IMAGE_PAD,
    VISION_END,
    VISION_START,
)
from mindvl.common.errors import UserError
from mindvl.common.sample import IMAGE_PLACEHOLDER
from mindvl.common.text_tokens import TextTokenizer
from mindvl.trainer.model.checkpoint_io import (
    default_mode,
    load_mindvl,
    read_inference,
    save_mindvl,
)
from mindvl.trainer.model.mindvl import MindVL

_IMAGE = VISION_START + IMAGE_PAD + VISION_END
# ``<image>\n{prompt}`` as one user turn, then the assistant header (model/generate.py)
CHAT_TEMPLATE = (
    "{% for m in messages %}" + IM_START + "{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] | replace('"
    + IMAGE_PLACEHOLDER
    + "', '"
    + _IMAGE
    + "') }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}" + _IMAGE + "{% if not loop.last %}{{ '\\n' }}{% endif %}"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}" + IM_END + "\n"
    "{% endfor %}{% if add_generation_prompt %}" + IM_START + "assistant\n{% endif %}"
)


def is_qwen2_5_vl_compatible(model: MindVL) -> bool:
    cfg = model.config
    merged = model.vision.config.hidden_size * model.merge_unit
    return (
        cfg.llm.get("model_type") == "qwen2"
        and cfg.projector_norm == "patch_rmsnorm"
        and cfg.projector_hidden == merged
    )


def export_hf(ckpt, out) -> str:
    """Write ``ckpt`` as a transformers checkpoint; returns the model type written."""
    model = load_mindvl(ckpt)
    try:
        tokenizer = TextTokenizer.from_path(ckpt)
    except UserError as err:
        raise UserError(f"{ckpt}: export needs the checkpoint's tokenizer ({err})") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if is_qwen2_5_vl_compatible(model):
        kind = "qwen2_5_vl"
        to_qwen2_5_vl(model, tokenizer).save_pretrained(str(out))
    else:
        kind = "mindvl"
        save_mindvl(model, out)
    save_processor(out, tokenizer, read_inference(ckpt).image_tokens)
    default_mode(*(p for p in out.iterdir() if p.is_file()))
    return kind


def to_qwen2_5_vl(model: MindVL, tokenizer: TextTokenizer):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    llm_cfg = model.llm.config
    head_dim = (
        getattr(llm_cfg, "head_dim", None) or llm_cfg.hidden_size // llm_cfg.num_attention_heads
    )
    half = head_dim // 2
    hw = 3 * half // 8  # positions are 1D, so the (t, h, w) split never changes the result
    text = {k: v for k, v in llm_cfg.to_dict().items() if k not in ("model_type", "architectures")}
    text["rope_parameters"] = {
        **(text.get("rope_parameters") or {}),
        "rope_type": "default",
        "mrope_section": [half - 2 * hw, hw, hw],
    }
    vision = {**model.vision.config.to_dict(), "out_hidden_size": llm_cfg.hidden_size}
    ids = {t: tokenizer.hf.convert_tokens_to_ids(t) for t in (VISION_START, VISION_END, IM_END)}
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=model.config.image_pad_token_id,
        video_token_id=model.config.image_pad_token_id,
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
        tie_word_embeddings=llm_cfg.tie_word_embeddings,
    )
    hf = Qwen2_5_VLForConditionalGeneration(config).to(model.dtype).eval()
    visual = dict(model.vision.state_dict())
    p = model.projector
    visual |= {
        "merger.ln_q.weight": p.norm.weight,
        "merger.mlp.0.weight": p.fc1.weight,
        "merger.mlp.0.bias": p.fc1.bias,
        "merger.mlp.2.weight": p.fc2.weight,
        "merger.mlp.2.bias": p.fc2.bias,
    }
    hf.model.visual.load_state_dict(visual, strict=True)
    hf.model.language_model.load_state_dict(model.llm.model.state_dict(), strict=True)
    if not llm_cfg.tie_word_embeddings:
        hf.lm_head.load_state_dict(model.llm.lm_head.state_dict(), strict=True)
    hf.generation_config.eos_token_id = [
        ids[IM_END],
        tokenizer.hf.convert_tokens_to_ids(END_OF_TEXT),
    ]
    hf.generation_config.pad_token_id = tokenizer.pad_id
    return hf


def save_processor(out: Path, tokenizer: TextTokenizer, rule) -> None:
    """Qwen2.5-VL processor files: image processor, tokenizer, chat template."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    images = Qwen2VLImageProcessorPil(min_pixels=rule.min_pixels, max_pixels=rule.max_pixels)
    images.save_pretrained(str(out))
    tokenizer.hf.save_pretrained(str(out))
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["return_mm_token_type_ids"] = False  # 1D positions, see the module docstring
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True))
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    (out / "processor_config.json").write_text(
        json.dumps({"processor_class": "Qwen2_5_VLProcessor"}, indent=2)
    )

"""A tiny random-initialised Qwen2-VL checkpoint, built offline in a few seconds.

For tests, benchmarks and demos of the captioning machinery: its captions are noise, but
it loads through the same ``hf`` backend path as a real Qwen2-VL checkpoint (config,
safetensors, tokenizer with the Qwen special tokens, image processor, chat template).
"""

from __future__ import annotations

from pathlib import Path

from mindvl.common.chat import IM_END, IM_START, IMAGE_PAD, VISION_END, VISION_START

CHAT_TEMPLATE = (
    "{% for m in messages %}" + IM_START + "{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}"
    + VISION_START
    + IMAGE_PAD
    + VISION_END
    + "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    + IM_END
    + "\n"
    "{% endfor %}{% if add_generation_prompt %}" + IM_START + "assistant\n{% endif %}"
)

_TEXTS = [
    "a red circle on a white background",
    "a blue square next to a green triangle",
    "describe the image in one sentence",
    "the chart shows values rising over the years",
    "text reading hello world in black letters",
]


def build_tiny_qwen2vl(out_dir: str | Path, seed: int = 0, hidden: int = 32) -> Path:
    """Write a ~0.1M-parameter Qwen2-VL checkpoint + processor files to ``out_dir``."""
    import torch
    from transformers import PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from mindvl.common.tokenizer_train import train_bpe_tokenizer

    out = Path(out_dir)
    train_bpe_tokenizer(_TEXTS * 8, 400, out)
    tok = PreTrainedTokenizerFast.from_pretrained(str(out))
    ids = {t: tok.convert_tokens_to_ids(t) for t in (IM_END, VISION_START, VISION_END, IMAGE_PAD)}
    heads = 2
    head_dim = hidden // heads
    half = head_dim // 2
    hw = 3 * half // 8  # mrope_section (t, h, w) must sum to head_dim / 2
    text = {
        "vocab_size": len(tok),
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": heads,
        "num_key_value_heads": 1,
        "max_position_embeddings": 1024,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": [half - 2 * hw, hw, hw],
        },
        "bos_token_id": tok.eos_token_id,
        "eos_token_id": ids[IM_END],
        "pad_token_id": tok.pad_token_id,
    }
    vision = {
        "depth": 1,
        "embed_dim": hidden,
        "hidden_size": hidden,
        "num_heads": heads,
        "mlp_ratio": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids[IMAGE_PAD],
        video_token_id=ids[IMAGE_PAD],
        vision_start_token_id=ids[VISION_START],
        vision_end_token_id=ids[VISION_END],
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids[IM_END]
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(str(out))
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE, encoding="utf-8")
    # small images -> few vision tokens: 4..16 merged tokens per image
    Qwen2VLImageProcessorPil(min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16).save_pretrained(
        str(out)
    )
    return out

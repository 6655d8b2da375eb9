"""A tiny random CLIP saved to a local directory (no weights downloaded), for clip_score tests."""

from __future__ import annotations

from pathlib import Path


def save_tiny_clip(out: Path) -> Path:
    import torch
    import transformers
    from transformers import CLIPConfig, CLIPModel

    from mindvl.common.tokenizer_train import train_bpe_tokenizer

    tok_dir = train_bpe_tokenizer(["a red cat on a mat", "a blue dog in the snow"] * 20, 300, out)
    tok = transformers.AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 37,
            "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 24,
            # eos id 2 selects CLIP's legacy pooling (at the highest token id): this
            # tokenizer appends no end token, so eos-position pooling would read token 0
            "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": tok.pad_token_id,
        },
        vision_config={
            "image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
            "num_hidden_layers": 1, "num_attention_heads": 2,
        },
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(str(out))
    processor_cls = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)
    processor_cls(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(str(out))
    return out

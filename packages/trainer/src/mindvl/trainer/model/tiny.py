"""Tiny MindVL configs for tests and smoke runs (random weights, CPU-fast)."""

from __future__ import annotations

from mindvl.trainer.model.config import MindVLConfig

TINY_LLMS = {
    "qwen3": {"model_type": "qwen3", "head_dim": 8},
    "qwen2": {"model_type": "qwen2"},
    "llama": {"model_type": "llama"},
    # MoE: 4 routed experts, top-2, on every layer (qwen3_moe) or after one dense layer
    # with a shared expert, 2 groups and a sigmoid router (deepseek_v3, MLA attention)
    "qwen3_moe": {"model_type": "qwen3_moe", "head_dim": 8, "num_experts": 4,
                  "num_experts_per_tok": 2, "moe_intermediate_size": 16,
                  "router_aux_loss_coef": 0.01},
    "deepseek_v3": {"model_type": "deepseek_v3", "n_routed_experts": 4,
                    "num_experts_per_tok": 2, "n_group": 2, "topk_group": 2,
                    "first_k_dense_replace": 1, "moe_intermediate_size": 16,
                    "n_shared_experts": 1, "routed_scaling_factor": 1.0, "kv_lora_rank": 16,
                    "q_lora_rank": None, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8,
                    "v_head_dim": 8, "num_key_value_heads": 4},
}  # fmt: skip


def tiny_config(
    vocab_size: int,
    image_pad_token_id: int,
    llm_type: str = "qwen3",
    tie_word_embeddings: bool = True,
    eos_token_id: int = 0,
) -> MindVLConfig:
    """Depth-2 Qwen2.5-VL tower (block 1 full attention, 56px windows) + 2-layer LLM, hidden 32
    (``llm_type`` a key of TINY_LLMS; its entries override the shared LLM fields)."""
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": 32,
        "fullatt_block_indexes": [1],
        "window_size": 56,
    }
    llm = {
        "vocab_size": vocab_size,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "tie_word_embeddings": tie_word_embeddings,
        "bos_token_id": eos_token_id,
        "eos_token_id": eos_token_id,
        "pad_token_id": eos_token_id,
        **TINY_LLMS[llm_type],
    }
    return MindVLConfig(
        vision=vision, llm=llm, projector_hidden=48, image_pad_token_id=image_pad_token_id
    )


def small_config(vocab_size: int, image_pad_token_id: int, eos_token_id: int = 0) -> MindVLConfig:
    """A still-small model (~0.5M parameters) that can learn the corpus kit's easy tasks
    (colours, counts) on a CPU in minutes: the ``mindvl demo`` model."""
    config = tiny_config(vocab_size, image_pad_token_id, eos_token_id=eos_token_id)
    vision = {**config.vision, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4,
              "out_hidden_size": 64}  # fmt: skip
    llm = {**config.llm, "hidden_size": 96, "intermediate_size": 192, "num_attention_heads": 4,
           "num_key_value_heads": 2, "head_dim": 24}  # fmt: skip
    return config.model_copy(update={"vision": vision, "llm": llm, "projector_hidden": 128})


def small_moe_config(
    vocab_size: int, image_pad_token_id: int, eos_token_id: int = 0
) -> MindVLConfig:
    """The demo model with a DeepSeek-V3-style LLM: one dense layer, then 3 MoE layers of
    8 routed experts (top-2, 2 groups) and a shared expert, sigmoid router with its bias."""
    config = small_config(vocab_size, image_pad_token_id, eos_token_id=eos_token_id)
    llm = {k: v for k, v in config.llm.items() if k not in ("model_type", "head_dim")}
    llm.update(TINY_LLMS["deepseek_v3"])
    llm.update({"num_hidden_layers": 4, "n_routed_experts": 8, "moe_intermediate_size": 48,
                "kv_lora_rank": 32, "qk_rope_head_dim": 16, "qk_nope_head_dim": 16,
                "v_head_dim": 24, "num_key_value_heads": 4})  # fmt: skip
    return config.model_copy(update={"llm": llm})


def _tiny(llm_type: str):
    def make(vocab_size: int, image_pad_token_id: int, eos_token_id: int = 0) -> MindVLConfig:
        return tiny_config(vocab_size, image_pad_token_id, llm_type, eos_token_id=eos_token_id)

    return make


PRESETS = {
    "tiny": tiny_config,
    "small": small_config,
    "tiny_qwen3_moe": _tiny("qwen3_moe"),
    "tiny_deepseek_v3": _tiny("deepseek_v3"),
    "small_moe": small_moe_config,
}


def random_image_sample(gen, vocab_size: int, pad_id: int, text_tokens: int) -> dict:
    """One random 112x112 image (64 patches -> 16 merged tokens) and ``text_tokens`` random
    tokens, as ``{"ids", "pixels", "grid"}`` for :func:`pack_samples` (benchmarks, tests)."""
    import torch

    text = torch.randint(10, vocab_size, (text_tokens,), generator=gen).tolist()
    ids = [7] + [pad_id] * 16 + [8] + text
    return {"ids": ids, "pixels": torch.randn(64, 1176, generator=gen), "grid": (1, 8, 8)}


def pack_samples(samples: list[dict], pad_id: int):
    """One packed row of :func:`random_image_sample` samples; image pads carry no loss."""
    import torch

    from mindvl.trainer.batch import PackedBatch

    ids, pos, cu = [], [], [0]
    for s in samples:
        ids += s["ids"]
        pos += list(range(len(s["ids"])))
        cu.append(len(ids))
    t = torch.tensor([ids])
    return PackedBatch(
        input_ids=t,
        labels=torch.where(t == pad_id, -100, t),
        position_ids=torch.tensor([pos]),
        cu_seqlens=cu,
        pixel_values=torch.cat([s["pixels"] for s in samples]),
        image_grid_thw=torch.tensor([s["grid"] for s in samples]),
    )

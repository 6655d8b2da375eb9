"""Hugging Face checkpoints in and out: ``mindvl model import|assemble|export``, ``mindvl
generate``. Tiny random models are written with ``save_pretrained`` in small shards, so the
real loading code (index + shards) runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from mindvl.common.chat import END_OF_TEXT
from mindvl.common.cli import cli
from mindvl.common.text_tokens import TextTokenizer
from mindvl.common.tokenizer_train import train_bpe_tokenizer
from mindvl.trainer.batch import PackedBatch
from mindvl.trainer.model import MindVL
from mindvl.trainer.model.checkpoint_io import read_inference
from mindvl.trainer.model.generate import generate, prompt_ids
from mindvl.trainer.model.image_processing import preprocess_images

TEXTS = ["a red circle on a white background", "what colour is the mug?", "blue", "a chart"] * 20
PROMPT = "what colour is the mug?"
VISION = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
          "out_hidden_size": 32, "fullatt_block_indexes": [1], "window_size": 56}  # fmt: skip
LLM = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
       "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}  # fmt: skip
SHARD = "40KB"  # several shards + model.safetensors.index.json


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def image_file(path, seed=0, size=(90, 60)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory):
    """A tiny random Qwen2.5-VL checkpoint with mindvl's chat tokens and an image processor."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    out = tmp_path_factory.mktemp("qwen25vl")
    tok = TextTokenizer.from_path(train_bpe_tokenizer(TEXTS, 300, out))
    ids = {t: tok.hf.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|vision_end|>")}
    text = {**LLM, "vocab_size": len(tok.hf), "tie_word_embeddings": False,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                "mrope_section": [2, 1, 1]}}  # fmt: skip
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=VISION, image_token_id=tok.image_pad_id,
        video_token_id=tok.image_pad_id, vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen2_5_VLForConditionalGeneration(config).save_pretrained(str(out), max_shard_size=SHARD)
    Qwen2VLImageProcessorPil(min_pixels=4 * 784, max_pixels=16 * 784).save_pretrained(str(out))
    assert (out / "model.safetensors.index.json").exists()
    return out


def mindvl_logits(model, tokenizer, rule, image: bytes, prompt: str):
    pixels, grid = preprocess_images([image], rule)
    ids = prompt_ids(tokenizer, prompt, int(grid.prod(-1).sum()) // 4)
    batch = PackedBatch(
        input_ids=torch.tensor([ids]), labels=torch.tensor([ids]),
        position_ids=torch.arange(len(ids))[None], cu_seqlens=[0, len(ids)],
        pixel_values=pixels, image_grid_thw=grid,
    )  # fmt: skip
    with torch.no_grad():
        return ids, model(batch, return_logits=True).logits


def processor_inputs(hf_dir, image_path, prompt):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(hf_dir))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return processor(text=[text], images=[Image.open(image_path)], return_tensors="pt")


def test_import_then_export_gives_qwen2_5_vl_with_mindvl_logits(qwen_dir, tmp_path):
    from transformers import Qwen2_5_VLForConditionalGeneration

    run("model", "import", qwen_dir, "-o", tmp_path / "m", "--dtype", "float32")
    model = MindVL.from_pretrained(tmp_path / "m").eval()
    assert model.config.projector_norm == "patch_rmsnorm" and model.config.projector_hidden == 128
    tokenizer = TextTokenizer.from_path(tmp_path / "m")
    rule = read_inference(tmp_path / "m").image_tokens
    assert (rule.min_pixels, rule.max_pixels) == (4 * 784, 16 * 784)  # from the processor
    img = image_file(tmp_path / "x.png")
    ids, ours = mindvl_logits(model, tokenizer, rule, img.read_bytes(), PROMPT)

    # the imported model computes what the original does (1D positions, no token types)
    original = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(qwen_dir)).eval()
    pixels, grid = preprocess_images([img.read_bytes()], rule)
    with torch.no_grad():
        theirs = original(input_ids=torch.tensor([ids]), pixel_values=pixels, image_grid_thw=grid)
    torch.testing.assert_close(theirs.logits, ours, atol=1e-5, rtol=1e-4)

    out = run("model", "export", tmp_path / "m", "--to", "hf", "-o", tmp_path / "hf")
    assert "qwen2_5_vl" in out
    exported = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(tmp_path / "hf")).eval()
    inputs = processor_inputs(tmp_path / "hf", img, PROMPT)
    assert "mm_token_type_ids" not in inputs  # keeps Qwen2.5-VL on mindvl's 1D positions
    assert inputs["input_ids"][0].tolist() == ids  # chat template == mindvl's rendering
    with torch.no_grad():  # the model itself: same logits on mindvl's pixels
        same_pixels = exported(**{**inputs, "pixel_values": pixels}).logits
        logits = exported(**inputs).logits
    torch.testing.assert_close(same_pixels, ours, atol=1e-5, rtol=1e-4)
    # the whole HF path: transformers' image processor rounds a few resized pixels one
    # intensity level away from mindvl's (<= 0.015 after normalisation)
    assert (inputs["pixel_values"] - pixels).abs().max() < 0.02
    torch.testing.assert_close(logits, ours, atol=2e-3, rtol=0)
    # generation through transformers continues on 1D positions too: mindvl's answer
    stop = [tokenizer.hf.convert_tokens_to_ids(t) for t in ("<|im_end|>", END_OF_TEXT)]
    gen = {"max_new_tokens": 5, "do_sample": False}
    new = exported.generate(**inputs | {"pixel_values": pixels}, **gen, eos_token_id=stop)
    new = new[:, len(ids) :]
    expected = generate(model, tokenizer, [img.read_bytes()], [PROMPT], rule, gen)
    assert tokenizer.hf.batch_decode(new, skip_special_tokens=True) == expected
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "hf").iterdir()}
    assert len(set(modes.values())) == 1, modes


def _generic_tokenizer(out):
    """A tokenizer that has none of mindvl's chat tokens except end-of-text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=[END_OF_TEXT], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    tok.train_from_iterator(TEXTS, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=END_OF_TEXT)
    fast.save_pretrained(str(out))
    return fast


def test_assemble_moe_llm_and_export_as_registered_mindvl_type(qwen_dir, tmp_path):
    from transformers import AutoConfig, AutoModelForImageTextToText, Qwen3MoeConfig
    from transformers import Qwen3MoeForCausalLM as MoE

    llm_dir = tmp_path / "llm"
    vocab = len(_generic_tokenizer(llm_dir))
    cfg = Qwen3MoeConfig(**LLM, vocab_size=vocab, head_dim=8, num_experts=4,
                         num_experts_per_tok=2, moe_intermediate_size=16)  # fmt: skip
    torch.manual_seed(1)
    MoE(cfg).save_pretrained(str(llm_dir), max_shard_size=SHARD)
    assert (llm_dir / "model.safetensors.index.json").exists()

    run("model", "assemble", "--vision", qwen_dir, "--llm", llm_dir, "-o", tmp_path / "m",
        "--dtype", "float32")  # fmt: skip
    model = MindVL.from_pretrained(tmp_path / "m").eval()
    tokenizer = TextTokenizer.from_path(tmp_path / "m")  # the chat tokens were added
    assert model.config.llm["model_type"] == "qwen3_moe"
    assert model.llm.get_input_embeddings().num_embeddings == len(tokenizer.hf) == vocab + 6
    original = MoE.from_pretrained(str(llm_dir)).eval()
    emb = model.llm.get_input_embeddings().weight
    torch.testing.assert_close(emb[:vocab], original.get_input_embeddings().weight, atol=0, rtol=0)
    expert = "model.layers.1.mlp.experts.gate_up_proj"
    torch.testing.assert_close(
        model.llm.state_dict()[expert], original.state_dict()[expert], atol=0, rtol=0
    )

    # mindvl's own config.json loads through the Auto classes once mindvl is imported
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["architectures"] == ["MindVLForConditionalGeneration"]
    assert AutoConfig.from_pretrained(str(tmp_path / "m")).model_type == "mindvl"

    assert "mindvl" in run("model", "export", tmp_path / "m", "--to", "hf", "-o", tmp_path / "hf")
    assert (tmp_path / "hf" / "chat_template.jinja").exists()
    hf = AutoModelForImageTextToText.from_pretrained(str(tmp_path / "hf"))
    assert type(hf).__name__ == "MindVLForConditionalGeneration"
    img = image_file(tmp_path / "x.png", seed=3, size=(70, 100))
    rule = read_inference(tmp_path / "hf").image_tokens
    ids, ours = mindvl_logits(model, tokenizer, rule, img.read_bytes(), PROMPT)
    inputs = processor_inputs(tmp_path / "hf", img, PROMPT)
    assert inputs["input_ids"][0].tolist() == ids
    pixels, _ = preprocess_images([img.read_bytes()], rule)
    with torch.no_grad():
        same_pixels = hf(**{**inputs, "pixel_values": pixels}).logits
        logits = hf(**inputs).logits
    torch.testing.assert_close(same_pixels, ours, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits, ours, atol=2e-3, rtol=0)
    stop = [tokenizer.hf.convert_tokens_to_ids(t) for t in ("<|im_end|>", END_OF_TEXT)]
    gen = {"max_new_tokens": 5, "do_sample": False}
    new = hf.generate(**inputs | {"pixel_values": pixels}, **gen, eos_token_id=stop)  # new only
    expected = generate(model, tokenizer, [img.read_bytes()], [PROMPT], rule, gen)
    assert tokenizer.hf.batch_decode(new, skip_special_tokens=True) == expected


def test_generate_cli_answers_like_the_library(qwen_dir, tmp_path):
    run("model", "import", qwen_dir, "-o", tmp_path / "m", "--dtype", "float32")
    img = image_file(tmp_path / "x.png", seed=5)
    out = run("generate", tmp_path / "m", "--image", img, "--prompt", PROMPT,
              "--max-new-tokens", 6, "--device", "cpu")  # fmt: skip
    model = MindVL.from_pretrained(tmp_path / "m").eval()
    tokenizer = TextTokenizer.from_path(tmp_path / "m")
    expected = generate(model, tokenizer, [img.read_bytes()], [PROMPT],
                        read_inference(tmp_path / "m").image_tokens, {"max_new_tokens": 6})  # fmt: skip
    assert out == expected[0] + "\n"
    bad = CliRunner().invoke(cli, ["generate", str(qwen_dir), "--image", str(img)])
    assert bad.exit_code != 0 and "not a MindVL checkpoint" in bad.output

"""Save -> reload gives the same model; greedy generation agrees with the packed forward."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from mindvl.common.errors import UserError
from mindvl.common.text_tokens import TextTokenizer
from mindvl.common.tokenizer_train import train_bpe_tokenizer
from mindvl.common.tokens import ImageTokenRule
from mindvl.trainer.batch import PackedBatch
from mindvl.trainer.model import InferenceConfig, MindVL
from mindvl.trainer.model.checkpoint_io import read_inference
from mindvl.trainer.model.generate import generate, prompt_ids
from mindvl.trainer.model.image_processing import preprocess_images
from mindvl.trainer.model.tiny import tiny_config

RULE = ImageTokenRule(min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28)
TEXTS = ["a red circle on a white background", "what colour is the mug?", "blue", "a chart"] * 20


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return train_bpe_tokenizer(TEXTS, vocab_size=300, out_dir=tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return TextTokenizer.from_path(tokenizer_dir)


def image_bytes(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def make_model(tokenizer, seed: int = 0, **kw) -> MindVL:
    torch.manual_seed(seed)
    vocab = len(tokenizer.hf)
    return MindVL(tiny_config(vocab, tokenizer.image_pad_id, **kw)).eval()


def batch_for(tokenizer, prompt: str, image: bytes, answer: list[int]) -> PackedBatch:
    pixels, grid = preprocess_images([image], RULE)
    ids = prompt_ids(tokenizer, prompt, int(grid.prod(-1).sum()) // 4) + answer
    return PackedBatch(
        input_ids=torch.tensor([ids]),
        labels=torch.tensor([ids]),
        position_ids=torch.arange(len(ids))[None],
        cu_seqlens=[0, len(ids)],
        pixel_values=pixels,
        image_grid_thw=grid,
    )


@pytest.mark.parametrize(("llm_type", "tied"), [("qwen3", True), ("qwen2", False)])
def test_save_reload_identical_logits(tmp_path, tokenizer, tokenizer_dir, llm_type, tied):
    model = make_model(tokenizer, llm_type=llm_type, tie_word_embeddings=tied)
    batch = batch_for(tokenizer, "what colour?", image_bytes(90, 60, 0), [10, 11, 12])
    with torch.no_grad():
        before = model(batch, return_logits=True).logits
    rule = InferenceConfig(image_tokens=RULE)
    model.save_pretrained(tmp_path / "ckpt", tokenizer=tokenizer_dir, inference=rule)

    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert {"config.json", "model.safetensors", "inference.json", "tokenizer.json"} <= set(files)
    assert (
        json.loads((tmp_path / "ckpt" / "config.json").read_text())["llm"]["model_type"] == llm_type
    )
    assert read_inference(tmp_path / "ckpt") == rule
    mask = os.umask(0)
    os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "ckpt").iterdir()}
    assert modes["model.safetensors"] == modes["config.json"] == 0o666 & ~mask

    again = MindVL.from_pretrained(tmp_path / "ckpt").eval()
    head, emb = again.llm.get_output_embeddings().weight, again.llm.get_input_embeddings().weight
    assert (head.data_ptr() == emb.data_ptr()) is tied
    with torch.no_grad():
        after = again(batch, return_logits=True).logits
    torch.testing.assert_close(after, before, atol=0, rtol=0)
    assert TextTokenizer.from_path(tmp_path / "ckpt").image_pad_id == tokenizer.image_pad_id


def test_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a MindVL checkpoint"):
        MindVL.from_pretrained(tmp_path)


def test_greedy_generation_matches_packed_forward(tokenizer):
    model = make_model(tokenizer, seed=3)
    images = [image_bytes(90, 60, 1), image_bytes(40, 120, 2)]
    prompts = ["what colour is the mug?", ""]  # a question and a caption prompt
    out_ids = []
    texts = generate(model, tokenizer, images, prompts, RULE, {"max_new_tokens": 5})
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts) and any(texts)
    for image, prompt in zip(images, prompts, strict=True):
        # a KV-cache-free greedy decode through the training forward
        answer: list[int] = []
        for _ in range(5):
            with torch.no_grad():
                logits = model(
                    batch_for(tokenizer, prompt, image, answer), return_logits=True
                ).logits
            answer.append(int(logits[0, -1].argmax()))
        out_ids.append(answer)
    stops = {tokenizer.hf.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")}
    for text, ids in zip(texts, out_ids, strict=True):
        cut = next((i for i, t in enumerate(ids) if t in stops), len(ids))
        assert text == tokenizer.hf.decode(ids[:cut], skip_special_tokens=True)

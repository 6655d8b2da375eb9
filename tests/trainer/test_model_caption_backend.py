"""The ``mindvl`` caption backend loads a saved checkpoint through the entry point."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import torch
from PIL import Image

from mindvl.common.caption_backend import CaptionBackend, backend_class
from mindvl.common.text_tokens import TextTokenizer
from mindvl.common.tokenizer_train import train_bpe_tokenizer
from mindvl.common.tokens import ImageTokenRule
from mindvl.trainer.model import InferenceConfig, MindVL
from mindvl.trainer.model.tiny import tiny_config


def png(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_caption_backend_from_checkpoint(tmp_path):
    tok_dir = train_bpe_tokenizer(["a red circle", "a blue square"] * 30, 280, tmp_path / "tok")
    tok = TextTokenizer.from_path(tok_dir)
    torch.manual_seed(0)
    model = MindVL(tiny_config(len(tok.hf), tok.image_pad_id))
    rule = ImageTokenRule(min_pixels=4 * 28 * 28, max_pixels=9 * 28 * 28)
    ckpt = tmp_path / "tiny-mindvl"
    model.save_pretrained(ckpt, tokenizer=tok_dir, inference=InferenceConfig(image_tokens=rule))

    backend = backend_class("mindvl")(str(ckpt), "cpu")
    assert isinstance(backend, CaptionBackend)
    assert backend.model_id == "tiny-mindvl"
    h = hashlib.sha256(b"model.safetensors\x00" + (ckpt / "model.safetensors").read_bytes())
    assert backend.weights_digest == h.hexdigest()
    assert backend.rule == rule

    images = [png(80, 50, 1), png(30, 90, 2), png(80, 50, 1)]
    prompts = ["Describe the image.", "", "Describe the image."]
    out = backend.generate(images, prompts, {"max_new_tokens": 4})
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    assert out[0] == out[2]  # greedy and batch-independent
    assert backend.generate(images[:1], prompts[:1], {"max_new_tokens": 4}) == out[:1]

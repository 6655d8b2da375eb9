"""Held-out-style eval builds for the evaluation tests: chosen questions and answers,
written in the documented shard format (``webdataset.TarWriter``) with a RatioManifest."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from mindvl.common.sample import IMAGE_PLACEHOLDER, ImageRef, Sample, TokenCounts, Turn, make_key
from mindvl.common.text_tokens import TextTokenizer
from mindvl.common.tokenizer_train import train_bpe_tokenizer
from mindvl.common.tokens import ImageTokenRule
from mindvl.trainer.data.synth_shards import write_samples

RULE = ImageTokenRule(min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28)
TEXTS = [
    "What colour is the circle? red blue green yellow",
    "How many squares are there? 1 2 3 4 5",
    "What text is written in the image? hello world",
    "Where is the blue square? left right top bottom",
    "What is the value of A? a photo of a small chart",
] * 20


def train_tokenizer(out: Path) -> Path:
    return train_bpe_tokenizer(TEXTS, vocab_size=300, out_dir=out)


def image_bytes(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def qa_sample(i: int, question: str, answer: str, category: str, size, tok, rule):
    """A one-image conversation sample (``heldout-`` id) and its image bytes."""
    blob = image_bytes(*size, seed=i)
    conv = [
        Turn(role="user", content=f"{IMAGE_PLACEHOLDER}\n{question}"),
        Turn(role="assistant", content=answer),
    ]
    counts = tok.sample_tokens(conv, None, [size], rule)
    ref = ImageRef(
        member="img0.jpg",
        format="jpg",
        width=size[0],
        height=size[1],
        sha256=hashlib.sha256(blob).hexdigest(),
        tokens=rule.tokens(*size),
    )
    sample = Sample(
        key=make_key("synth", f"heldout-{category}-{i:06d}"),
        source="synth",
        category=category,
        conversation=conv,
        images=[ref],
        tokens=TokenCounts(image=counts.image, text=counts.text),
    )
    return sample, [blob]


def caption_sample(i: int, caption: str, tok, rule):
    size = (84, 56)
    blob = image_bytes(*size, seed=1000 + i)
    counts = tok.sample_tokens(None, caption, [size], rule)
    ref = ImageRef(
        member="img0.jpg",
        format="jpg",
        width=size[0],
        height=size[1],
        sha256=hashlib.sha256(blob).hexdigest(),
        tokens=rule.tokens(*size),
    )
    sample = Sample(
        key=make_key("synth", f"heldout-caption-{i:06d}"),
        source="synth",
        category="caption",
        caption=caption,
        images=[ref],
        tokens=TokenCounts(image=counts.image, text=counts.text),
    )
    return sample, [blob]


def write_build(out: Path, tokenizer: Path, samples: list, n_shards: int = 2, rule=RULE):
    """``samples``: (Sample, [image bytes]) pairs; sample i goes to shard i % n_shards."""
    return write_samples(out, tokenizer, samples, n_shards, "eval", rule, name="heldout")


def tokenizer(path: Path) -> TextTokenizer:
    return TextTokenizer.from_path(path)

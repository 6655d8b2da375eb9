"""Write a small stage of shards + manifest in the documented format, for tests and bench.

The trainer never imports the data engine, so its tests make their own shards: samples
of widely varying length (short captions to long multi-turn conversations, 0-2 images of
varied size), written by the shard format's own writer (:mod:`mindvl.common.shard_format`)
as ``{key}.json`` + ``{key}.img{i}.bin`` and described by a :class:`RatioManifest` whose token counts come
from the shared tokenizer and image rule.
"""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

from mindvl.common.manifest import (
    CategoryMix,
    DedupStats,
    MixtureRecord,
    RatioManifest,
    RecipeRecord,
    ShardRecord,
    TokenizerRecord,
    sha256_file,
)
from mindvl.common.sample import (
    IMAGE_PLACEHOLDER,
    ImageRef,
    Sample,
    TokenCounts,
    Turn,
    image_member,
    make_key,
)
from mindvl.common.shard_format import image_width, sample_members, write_shard
from mindvl.common.text_tokens import TextTokenizer
from mindvl.common.tokens import ImageTokenRule

WORDS = [
    *[
        "the",
        "a",
        "red",
        "blue",
        "green",
        "circle",
        "square",
        "chart",
        "shows",
        "value",
        "axis",
        "label",
        "text",
        "reads",
        "large",
    ],
    *[
        "small",
        "left",
        "right",
        "top",
        "bottom",
        "image",
        "photo",
        "of",
        "with",
        "and",
        "in",
        "on",
        "near",
        "two",
        "three",
        "bar",
        "line",
    ],
]
TOKENIZER_TEXTS = [" ".join(WORDS)] * 20 + ["What is in the image? Describe it."] * 5


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def _image(rng: random.Random, size: tuple[int, int]) -> bytes:
    from PIL import Image

    im = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def make_sample(
    rng: random.Random, i: int, tok: TextTokenizer, rule: ImageTokenRule, long_tail: int
):
    """A sample (caption or conversation) and its image bytes; lengths vary over ~2 decades."""
    n_images = rng.choice([0, 1, 1, 1, 2])
    sizes = [(rng.randrange(40, 400), rng.randrange(40, 400)) for _ in range(n_images)]
    if n_images <= 1 and rng.random() < 0.4:
        conv, caption = None, _sentence(rng, rng.randrange(3, 40))
    else:
        turns = []
        for t in range(rng.choice([1, 1, 2, 3])):
            q = _sentence(rng, rng.randrange(3, 20))
            if t == 0 and n_images:
                q = (IMAGE_PLACEHOLDER + "\n") * n_images + q
            words = rng.randrange(2, long_tail if rng.random() < 0.2 else 30)
            turns += [
                Turn(role="user", content=q),
                Turn(role="assistant", content=_sentence(rng, words)),
            ]
        conv, caption = turns, None
    blobs = [_image(rng, s) for s in sizes]
    images = [
        ImageRef(
            member=image_member(j, "jpg"),
            format="jpg",
            width=w,
            height=h,
            sha256=hashlib.sha256(b).hexdigest(),
            tokens=rule.tokens(w, h),
        )
        for j, ((w, h), b) in enumerate(zip(sizes, blobs, strict=True))
    ]
    counts = tok.sample_tokens(conv, caption, sizes, rule)
    sample = Sample(
        key=make_key("synth", str(i)),
        source="synth",
        category="caption" if caption is not None else "vqa",
        conversation=conv,
        caption=caption,
        images=images,
        tokens=TokenCounts(image=counts.image, text=counts.text),
    )
    return sample, blobs


def write_stage(
    out: str | Path,
    tokenizer: str | Path,
    n_samples: int = 200,
    n_shards: int = 4,
    seed: int = 0,
    stage: str = "sft",
    rule: ImageTokenRule | None = None,
    long_tail: int = 300,
) -> RatioManifest:
    """Write ``n_shards`` tars of ``n_samples`` samples and ``manifest.json`` into ``out``."""
    rule = rule or ImageTokenRule(min_pixels=4 * 28 * 28, max_pixels=64 * 28 * 28)
    tok = TextTokenizer.from_path(tokenizer)
    rng = random.Random(seed)
    samples = [make_sample(rng, i, tok, rule, long_tail) for i in range(n_samples)]
    return write_samples(out, tokenizer, samples, n_shards, stage, rule, seed=seed)


def write_samples(
    out: str | Path,
    tokenizer: str | Path,
    samples: list[tuple[Sample, list[bytes]]],
    n_shards: int,
    stage: str,
    rule: ImageTokenRule,
    seed: int = 0,
    name: str = "synth",
) -> RatioManifest:
    """(Sample, image bytes) pairs -> ``{stage}-NNNNN.tar`` shards (sample i in shard
    i % n_shards) and a one-category ``manifest.json`` describing them."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shards = []
    width = image_width(sample for sample, _ in samples)
    for s in range(n_shards):
        shard = f"{stage}-{s:05d}.tar"
        groups = (sample_members(x, blobs, width) for x, blobs in samples[s::n_shards])
        write_shard(out / shard, groups)
        p = out / shard
        shards.append(
            ShardRecord(name=shard, bytes=p.stat().st_size, samples=len(samples[s::n_shards]),
                        sha256=sha256_file(p))
        )  # fmt: skip
    n = len(samples)
    img = sum(x.tokens.image for x, _ in samples)
    txt = sum(x.tokens.text for x, _ in samples)
    keys = "\n".join(x.key for s in range(n_shards) for x, _ in samples[s::n_shards])
    everything = CategoryMix(
        category="all", available_samples=n, available_tokens=img + txt, target_fraction=1.0,
        selected_unique=n, repeats=0, samples=n, image_tokens=img, text_tokens=txt,
        achieved_fraction_samples=1.0, achieved_fraction_tokens=1.0,
    )  # fmt: skip
    manifest = RatioManifest(
        name=name,
        stage=stage,
        code_version="test",
        seed=seed,
        recipe=RecipeRecord(text=name, digest=hashlib.sha256(name.encode()).hexdigest()),
        tokenizer=TokenizerRecord(path=str(Path(tokenizer).resolve()), digest="-"),
        image_tokens=rule,
        inputs=[],
        sources=[],
        funnel=[],
        dedup=DedupStats(),
        mixture=MixtureRecord(
            unit="samples", budget=n, max_repeat=1.0, shortfall="fail", categories=[everything]
        ),  # fmt: skip
        shards=shards,
        total_samples=n,
        total_image_tokens=img,
        total_text_tokens=txt,
        selected_keys_digest=hashlib.sha256(keys.encode()).hexdigest(),
    )
    manifest.save(out / "manifest.json")
    return manifest


def train_test_tokenizer(out: str | Path) -> Path:
    from mindvl.common.tokenizer_train import train_bpe_tokenizer

    return train_bpe_tokenizer(TOKENIZER_TEXTS, 300, out)

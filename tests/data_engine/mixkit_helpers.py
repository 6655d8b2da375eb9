"""Shared builders for the mixing and manifest CLI tests: a tiny tokenizer, kept candidates
with real encoded images, staging Parquet directories and recipes."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from PIL import Image

from mindvl.common.manifest import RecipeRecord
from mindvl.common.recipe import recipe_from_text, resolved_digest
from mindvl.common.sample import make_key
from mindvl.common.tokenizer_train import train_bpe_tokenizer
from mindvl.data_engine.record import Candidate, ImageRecord

WORDS = [
    "red",
    "blue",
    "green",
    "mug",
    "circle",
    "chart",
    "bar",
    "line",
    "text",
    "sign",
    "square",
    "the",
    "a",
    "of",
    "with",
    "on",
    "near",
    "big",
    "small",
]


def make_tokenizer(out: Path) -> Path:
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(300)]
    return train_bpe_tokenizer(texts, 400, out)


def encode_image(w: int, h: int, color: tuple[int, int, int], fmt: str) -> bytes:
    im = Image.new("RGB", (w, h), color)
    buf = io.BytesIO()
    im.save(buf, format={"jpg": "JPEG", "png": "PNG"}[fmt])
    return buf.getvalue()


def make_candidates(counts: dict[tuple[str, str], int], seed: int = 0) -> list[Candidate]:
    """``counts``: (source, category) -> number of kept candidates."""
    rng = random.Random(seed)
    out = []
    for (source, category), n in sorted(counts.items()):
        for i in range(n):
            w, h = rng.randint(20, 300), rng.randint(20, 300)
            fmt = rng.choice(["jpg", "png"])
            color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 30)))
            c = Candidate(
                key=make_key(source, f"id{i}"),
                source=source,
                category=category,
                raw_id=f"id{i}",
                images=[
                    ImageRecord(
                        encode_image(w, h, color, fmt),
                        format=fmt,
                        width=w,
                        height=h,
                        phash=f"{rng.getrandbits(64):016x}",
                        pixel_hash=hashlib.sha256(bytes(color)).hexdigest(),
                        information=1.0,
                    )
                ],
                meta={"note": "t"},
            )
            if i % 2:
                c.conversation = [
                    {"role": "user", "content": f"<image>\nWhat is {words}?"},
                    {"role": "assistant", "content": words},
                ]
            else:
                c.caption = words
            out.append(c)
    return out


def write_staging(d: Path, cands: list[Candidate], n_files: int = 3, shuffle: int = 0) -> Path:
    """Spread candidates over ``n_files`` Parquet files in a shuffled order."""
    d.mkdir(parents=True, exist_ok=True)
    rows = [c.to_row() for c in cands]
    random.Random(shuffle).shuffle(rows)
    for f in range(n_files):
        part = rows[f::n_files]
        if part:
            pq.write_table(pa.Table.from_pylist(part), d / f"part-{shuffle}-{f:03d}.parquet")
    return d


def make_recipe(tokenizer: Path, sources: list[tuple[str, str]], mixture: dict | None, **extra):
    data = {
        "name": "mixtest",
        "stage": "s1",
        "seed": 7,
        "tokenizer": str(tokenizer),
        "sources": [
            {"name": s, "path": f"/in/{s}", "format": "llava", "category": c} for s, c in sources
        ],
        **({"mixture": mixture} if mixture else {}),
        **extra,
    }
    text = yaml.safe_dump(data, sort_keys=False)
    recipe = recipe_from_text(text)
    record = RecipeRecord(text=text, digest=resolved_digest(text, {}))
    return recipe, record


def write_mixed_build(root: Path) -> Path:
    """A small build whose samples differ in image format (jpg, png) and include text-only
    ones: the case readers that infer a schema or decode by extension trip on."""
    from mindvl.data_engine.accounting import BuildAccounting
    from mindvl.data_engine.mix import write_stage

    tok = make_tokenizer(root / "tok")
    cands = make_candidates({("a", "caption"): 12, ("c", "ocr"): 10})
    for c in cands[:3]:
        c.images = []
        c.caption = None
        c.conversation = [
            {"role": "user", "content": "Say red."},
            {"role": "assistant", "content": "red"},
        ]
    staging = write_staging(root / "st", cands)
    mixture = {"budget": 20, "targets": {"caption": 0.5, "ocr": 0.5}}
    recipe, record = make_recipe(
        tok, [("a", "caption"), ("c", "ocr")], mixture, shards={"max_samples": 8}
    )
    write_stage(staging, recipe, record, root / "out", BuildAccounting())
    return root / "out"

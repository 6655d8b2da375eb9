"""Kept candidates from the staging Parquet files, turned into shard :class:`Sample` s.

The staging directory may hold any number of files in any partitioning (one per Ray
block); rows are sorted by key here so nothing downstream depends on how they were split.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mindvl.common.errors import UserError
from mindvl.common.recipe import Recipe
from mindvl.common.sample import (
    CaptionProvenance,
    ImageRef,
    Sample,
    TokenCounts,
    Turn,
    detect_image_format,
    image_member,
)
from mindvl.common.text_tokens import TextTokenizer
from mindvl.data_engine.mix.selection import Item, Pick
from mindvl.data_engine.mix.spill import ImageSpill
from mindvl.data_engine.record import ROW_COLUMNS, Candidate

PROVENANCE_META = "caption_provenance"  # Candidate.meta key the captioner fills


@dataclass
class Kept:
    sample: Sample  # the original (repeat 0)
    spans: list[tuple[int, int]]  # where its images sit in the spill file

    @property
    def item(self) -> Item:
        s = self.sample
        return Item(s.key, s.source, s.category, s.tokens.image, s.tokens.text)


def iter_staging(staging_dir: Path, batch_rows: int = 512) -> Iterator[Candidate]:
    """Every kept candidate in ``staging_dir`` (recursively), file by file, batch by batch.

    Order follows the sorted file names; callers sort by key, so the partitioning of the
    staging files never shows in the output."""
    import pyarrow.parquet as pq

    for f in sorted(p for p in Path(staging_dir).rglob("*.parquet") if p.is_file()):
        pf = pq.ParquetFile(f)
        columns = [c for c in ROW_COLUMNS if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
            for row in batch.to_pylist():
                if row.get("drop_reason") is None:
                    yield Candidate.from_row(row)


def load_kept(staging_dir: Path, recipe: Recipe, spill: ImageSpill) -> dict[str, Kept]:
    """Kept samples by key, sorted by key; image bytes go to ``spill``."""
    tokenizer = TextTokenizer.from_path(recipe.tokenizer)
    kept: dict[str, Kept] = {}
    for c in iter_staging(staging_dir):
        if c.key in kept:
            raise UserError(f"staging holds sample key {c.key!r} twice ({staging_dir})")
        sample = to_sample(c, recipe, tokenizer)
        kept[c.key] = Kept(sample, [spill.append(im.data) for im in c.images])
    return dict(sorted(kept.items()))


def _size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.size


def _scalar_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in sorted(meta.items())
        if k != PROVENANCE_META and (v is None or isinstance(v, str | int | float | bool))
    }


def _provenance(meta: dict[str, Any]) -> CaptionProvenance | None:
    raw = meta.get(PROVENANCE_META)
    if raw is None:
        return None
    return CaptionProvenance.model_validate(json.loads(raw) if isinstance(raw, str) else raw)


def to_sample(c: Candidate, recipe: Recipe, tokenizer: TextTokenizer) -> Sample:
    """The original sample of a kept candidate, with its tokens counted."""
    if c.source not in _names(recipe):
        raise UserError(
            f"staged sample {c.key} comes from source {c.source!r}, which the recipe does not name"
        )
    rule = recipe.image_tokens
    refs, sizes = [], []
    for i, im in enumerate(c.images):
        data = im.data
        fmt = im.format or detect_image_format(data)
        if fmt is None:
            raise UserError(f"sample {c.key}: image {i} has an unknown format")
        w, h = (im.width, im.height) if im.width and im.height else _size(data)
        sizes.append((w, h))
        refs.append(
            ImageRef(
                member=image_member(i, fmt),
                format=fmt,
                width=w,
                height=h,
                sha256=hashlib.sha256(data).hexdigest(),
                phash=im.phash,
                tokens=rule.tokens(w, h),
            )
        )
    turns = None if c.conversation is None else [Turn.model_validate(t) for t in c.conversation]
    caption = c.caption if turns is None else None
    toks = tokenizer.sample_tokens(turns, caption, sizes, rule)
    meta = {"raw_id": c.raw_id, **_scalar_meta(c.meta)}
    if c.quality is not None:
        meta["quality"] = c.quality
    return Sample(
        key=c.key,
        source=c.source,
        category=c.category,
        conversation=turns,
        caption=caption,
        images=refs,
        tokens=TokenCounts(image=toks.image, text=toks.text),
        license=recipe.source(c.source).license,
        caption_provenance=_provenance(c.meta),
        meta=meta,
    )


def _names(recipe: Recipe) -> set[str]:
    return {s.name for s in recipe.sources}


def pick_sample(kept: Kept, pick: Pick) -> Sample:
    """The sample written for ``pick``: the original, or a repeat with its own key."""
    if pick.repeat == 0:
        return kept.sample
    return kept.sample.model_copy(update={"key": pick.key, "origin_key": pick.origin_key})

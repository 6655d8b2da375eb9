"""Kept candidates from the staging Parquet files, turned into shard :class:`Sample` s.

The staging directory may hold any number of files in any partitioning (one per Ray
block); rows are sorted by key here so nothing downstream depends on how they were split.
"""

from __future__ import annotations

import hashlib
import io
import json
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
from mindvl.data_engine.record import ROW_COLUMNS, Candidate

PROVENANCE_META = "caption_provenance"  # Candidate.meta key the captioner fills


@dataclass
class Kept:
    sample: Sample  # the original (repeat 0)
    images: list[bytes]

    @property
    def item(self) -> Item:
        s = self.sample
        return Item(s.key, s.source, s.category, s.tokens.image, s.tokens.text)


def read_staging(staging_dir: Path) -> list[Candidate]:
    """Every kept candidate in ``staging_dir`` (recursively), sorted by key."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(p for p in Path(staging_dir).rglob("*.parquet") if p.is_file())
    if not files:
        return []
    tables = [pq.read_table(f, columns=[c for c in ROW_COLUMNS]) for f in files]
    table = pa.concat_tables(tables, promote_options="permissive")
    rows = table.to_pylist()
    rows.sort(key=lambda r: r["key"])
    out = []
    for i, row in enumerate(rows):
        if i and rows[i - 1]["key"] == row["key"]:
            raise UserError(f"staging holds sample key {row['key']!r} twice ({staging_dir})")
        if row.get("drop_reason") is None:
            out.append(Candidate.from_row(row))
    return out


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


def to_kept(c: Candidate, recipe: Recipe, tokenizer: TextTokenizer) -> Kept:
    """Build the original sample of a kept candidate, counting its tokens."""
    if c.source not in _names(recipe):
        raise UserError(
            f"staged sample {c.key} comes from source {c.source!r}, which the recipe does not name"
        )
    rule = recipe.image_tokens
    refs, sizes = [], []
    for i, data in enumerate(c.images):
        fmt = (c.image_formats[i] if i < len(c.image_formats) else None) or detect_image_format(
            data
        )
        if fmt is None:
            raise UserError(f"sample {c.key}: image {i} has an unknown format")
        if i < len(c.widths) and i < len(c.heights) and c.widths[i] and c.heights[i]:
            w, h = c.widths[i], c.heights[i]
        else:
            w, h = _size(data)
        sizes.append((w, h))
        refs.append(
            ImageRef(
                member=image_member(i, fmt),
                format=fmt,
                width=w,
                height=h,
                sha256=hashlib.sha256(data).hexdigest(),
                phash=c.phashes[i] if i < len(c.phashes) else None,
                tokens=rule.tokens(w, h),
            )
        )
    turns = None if c.conversation is None else [Turn.model_validate(t) for t in c.conversation]
    caption = c.caption if turns is None else None
    toks = tokenizer.sample_tokens(turns, caption, sizes, rule)
    meta = {"raw_id": c.raw_id, **_scalar_meta(c.meta)}
    if c.quality is not None:
        meta["quality"] = c.quality
    sample = Sample(
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
    return Kept(sample=sample, images=list(c.images))


def _names(recipe: Recipe) -> set[str]:
    return {s.name for s in recipe.sources}


def pick_sample(kept: Kept, pick: Pick) -> Sample:
    """The sample written for ``pick``: the original, or a repeat with its own key."""
    if pick.repeat == 0:
        return kept.sample
    return kept.sample.model_copy(update={"key": pick.key, "origin_key": pick.origin_key})

"""``generate_corpus``: render, plant, duplicate, write, and record the truth.

Per category: ``n`` originals (split round-robin over categories), each faulted with
probability ``faults``; about ``faults * n`` extra duplicate records of clean originals;
about ``faults * n / 2`` low-info hard negatives, every other one with a near duplicate.
Records are shuffled per category before ids are assigned, so an id says nothing about
whether a record is faulty, a duplicate or a hard negative. Scenes, icons and equations that
would repeat an earlier picture of their category are drawn again (``render_distinct``), so
a sample depends on its own streams and on the earlier samples of its category only."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from mindvl.data_engine.synth import seeding as S
from mindvl.data_engine.synth.charts import render_chart
from mindvl.data_engine.synth.dups import Duplicate, make_duplicate, pick_kind
from mindvl.data_engine.synth.encoding import choose_format, encode
from mindvl.data_engine.synth.faults import pick_fault
from mindvl.data_engine.synth.grounding import render_grounding
from mindvl.data_engine.synth.lowinfo import render_low_info
from mindvl.data_engine.synth.ocr import render_ocr
from mindvl.data_engine.synth.planting import make_record
from mindvl.data_engine.synth.records import (
    CATEGORIES,
    FORMATS,
    CategoryCounts,
    KitSummary,
    Record,
    Rendered,
)
from mindvl.data_engine.synth.scenes import QUESTION_DESCRIBE, render_scene
from mindvl.data_engine.synth.text_only import text_only_rows, truth_rows, write_text_only
from mindvl.data_engine.synth.truth import truth_row, write_truth
from mindvl.data_engine.synth.writers import WRITERS

KIT_VERSION = 2  # 2: originals that repeat an earlier picture are drawn again
RENDERERS = {
    "caption": render_scene,
    "ocr": render_ocr,
    "grounding": render_grounding,
    "chart": render_chart,
}
LOW_INFO_DUP_KIND = {"icon": "flatten_alpha", "document": "recompress", "line_art": "resize"}


def split_round_robin(total: int) -> dict[str, int]:
    return {
        c: total // len(CATEGORIES) + (1 if i < total % len(CATEGORIES) else 0)
        for i, c in enumerate(CATEGORIES)
    }


def check_arguments(
    n: int, fmt: str, faults: float, seed: int, min_side: int, max_side: int
) -> None:
    """Raise ValueError with a one-line message for arguments the kit cannot honour."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    if not 0.0 <= faults <= 1.0:
        raise ValueError(f"--faults must be between 0 and 1, got {faults}")
    if seed < 0:
        raise ValueError(f"--seed must be non-negative, got {seed}")
    if not 32 <= min_side <= max_side <= 4096:
        raise ValueError(
            f"need 32 <= --min-side <= --max-side <= 4096, got {min_side} and {max_side}"
        )


@dataclass(frozen=True)
class KitOptions:
    """The arguments of one run, validated by :func:`check_arguments`."""

    n: int
    fmt: str
    faults: float = 0.0
    seed: int = 0
    min_side: int = 64
    max_side: int = 512
    heldout: bool = False
    qa_turns: int = 1
    describe: bool = False

    def rng(self, category: str, index: int, purpose: int, attempt: int = 0) -> np.random.Generator:
        return S.stream_rng(self.seed, self.heldout, category, index, purpose, attempt)


# Two originals are two pictures only if they differ by more than a planted near duplicate
# may: a crop takes 1-5% off each side, which moves a coordinate relative to the canvas by
# at most 0.05 / 0.94 = 0.053. Renderings with the same content (``layout_key``) whose
# relative geometry (``layout``) is closer than this are drawn again: the truth would
# otherwise call two copies of one picture distinct (seen: two identical triangle icons,
# one equation twice in one font, one orange diamond twice at one place).
COLLISION_TOLERANCE = 0.06
MAX_DRAWS = 50


@dataclass
class DistinctPictures:
    """The layouts drawn so far in a category, by content, and how many draws were redone."""

    layouts: dict[str, list[tuple[float, ...]]] = field(default_factory=dict)
    redrawn: int = 0

    def collides(self, rendered: Rendered) -> bool:
        new = rendered.layout
        return bool(new) and any(
            len(old) == len(new)
            and max(abs(a - b) for a, b in zip(old, new, strict=True)) < COLLISION_TOLERANCE
            for old in self.layouts.get(rendered.layout_key, ())
        )

    def add(self, rendered: Rendered) -> None:
        if rendered.layout:
            self.layouts.setdefault(rendered.layout_key, []).append(rendered.layout)


def render_distinct(
    opts: KitOptions, category: str, index: int, purpose: int, draw, seen: DistinctPictures
) -> tuple[np.random.Generator, Rendered]:
    """``draw(rng)`` on the sample's stream, again on fresh streams while it repeats an
    earlier picture of ``seen`` (which it then joins); returns the stream and the result."""
    for attempt in range(MAX_DRAWS):
        r = opts.rng(category, index, purpose, attempt)
        rendered = draw(r)
        if not seen.collides(rendered):
            seen.add(rendered)
            if attempt:
                seen.redrawn += 1
            return r, rendered
    raise RuntimeError(
        f"{category} sample {index}: {MAX_DRAWS} draws all repeat an earlier picture"
        f" ({rendered.layout_key!r}); the corpus is too large for this renderer's variety"
    )


def as_duplicate(record: Record, dup: Duplicate, group: int) -> Record:
    return replace(record, image=dup.image, image_format=dup.image_format, width=dup.width,
                   height=dup.height, dup_group=group, dup_kind=dup.dup_kind)  # fmt: skip


def render_originals(
    opts: KitOptions, category: str, n: int, seen: DistinctPictures
) -> list[Record]:
    records = []

    def draw(r: np.random.Generator) -> Rendered:
        return RENDERERS[category](r, opts.min_side, opts.max_side)

    for i in range(n):
        r, rendered = render_distinct(opts, category, i, S.RENDER, draw, seen)
        image_format, quality = choose_format(r)
        fault_rng = opts.rng(category, i, S.FAULT)
        fault = pick_fault(fault_rng, opts.faults, opts.fmt)
        rec = make_record(rendered, category, image_format, quality, fault, fault_rng, opts.fmt)
        more = rec.more_qa[: opts.qa_turns - 1]
        if opts.describe and category == "caption" and not rec.faults:
            more += ((QUESTION_DESCRIBE, rec.truth_caption),)
        records.append(replace(rec, more_qa=more))
    return records


def plant_duplicates(
    opts: KitOptions, category: str, originals: list[Record], n_dups: int, next_group: int
) -> tuple[list[Record], int]:
    """Duplicates of clean originals (marked "original" in place); sources are drawn without
    replacement while clean originals last."""
    clean = [i for i, rec in enumerate(originals) if not rec.faults]
    if not clean or not n_dups:
        return [], next_group
    order = opts.rng(category, 0, S.DUP_PICK).permutation(len(clean))
    sources = sorted(clean[int(order[j % len(clean)])] for j in range(n_dups))
    groups: dict[int, int] = {}
    extras = []
    for j, src in enumerate(sources):
        if src not in groups:
            groups[src] = next_group
            next_group += 1
            originals[src] = replace(originals[src], dup_group=groups[src], dup_kind="original")
        source = originals[src]
        r = opts.rng(category, j, S.DUPLICATE)
        dup = make_duplicate(r, source.image, source.image_format, pick_kind(r, category))
        extras.append(as_duplicate(source, dup, groups[src]))
    return extras, next_group


def render_hard_negatives(
    opts: KitOptions, category: str, n_low: int, next_group: int, seen: DistinctPictures
) -> tuple[list[Record], int]:
    """Low-info hard negatives; every other one also gets a recorded near duplicate."""
    records = []

    def draw(r: np.random.Generator) -> Rendered:
        return render_low_info(r, category, opts.min_side, opts.max_side)

    for j in range(n_low):
        r, rendered = render_distinct(opts, category, j, S.LOW_INFO, draw, seen)
        image_format = "png" if rendered.low_info_kind == "icon" or r.random() < 0.4 else "jpg"
        data = encode(rendered.image, image_format, int(r.integers(85, 96)))
        w, h = rendered.image.size
        text = rendered.caption
        low = Record("", category, data, image_format, w, h, text.encode(), rendered.question,
                     rendered.answer, text, faults=("low_info",), low_info=True)  # fmt: skip
        if j % 2 == 0:
            low = replace(low, dup_group=next_group, dup_kind="original")
            kind = LOW_INFO_DUP_KIND[rendered.low_info_kind]
            dup = make_duplicate(opts.rng(category, j, S.LOW_INFO_DUP), data, image_format, kind)
            records.append(as_duplicate(low, dup, next_group))
            next_group += 1
        records.append(low)
    return records, next_group


def assign_ids(records: list[Record], category: str, seed: int, heldout: bool) -> list[Record]:
    """Shuffle, then number: ``{category}-{k:06d}`` (``heldout-`` prefixed for heldout sets)."""
    perm = S.stream_rng(seed, heldout, category, 0, S.SHUFFLE).permutation(len(records))
    prefix = "heldout-" if heldout else ""
    return [replace(records[int(p)], id=f"{prefix}{category}-{k:06d}") for k, p in enumerate(perm)]


def generate_corpus(
    out: str | Path,
    n: int,
    fmt: str,
    faults: float = 0.0,
    seed: int = 0,
    min_side: int = 64,
    max_side: int = 512,
    heldout: bool = False,
    text_only: int = 0,
    qa_turns: int = 1,
    describe: bool = False,
) -> KitSummary:
    """Write a synthetic corpus under ``out`` (which must be empty or absent); ``text_only``
    adds that many image-free conversations under ``text/`` (LLaVA JSONL). ``qa_turns``:
    questions per conversation where an image answers several (scenes); the first is the
    same with any value. ``describe``: clean scenes end with "Describe the image." answered
    by their caption (dense supervision of every shape's colour and count)."""
    check_arguments(n, fmt, faults, seed, min_side, max_side)
    if qa_turns < 1:
        raise ValueError(f"--qa-turns must be at least 1, got {qa_turns}")
    if text_only < 0:
        raise ValueError(f"--text-only must be non-negative, got {text_only}")
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise ValueError(f"output path {root} exists and is not a directory")
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"output directory {root} exists and is not empty")
    root.mkdir(parents=True, exist_ok=True)

    per_cat = split_round_robin(n)
    dups = split_round_robin(round(faults * n))
    lows = split_round_robin(round(faults * n / 2))
    summary = KitSummary(out=str(root), fmt=fmt)
    rows: list[dict[str, object]] = []
    opts = KitOptions(n, fmt, faults, seed, min_side, max_side, heldout, qa_turns, describe)
    next_group = 0
    for cat in CATEGORIES:
        seen = DistinctPictures()
        originals = render_originals(opts, cat, per_cat[cat], seen)
        dup_records, next_group = plant_duplicates(opts, cat, originals, dups[cat], next_group)
        low_records, next_group = render_hard_negatives(opts, cat, lows[cat], next_group, seen)
        records = originals + dup_records + low_records
        records = assign_ids(records, cat, seed, heldout)
        paths = WRITERS[fmt](root, cat, records)
        rows += [truth_row(rec, fmt, paths[rec.id]) for rec in records]
        summary.categories[cat] = CategoryCounts(
            records=len(records),
            originals=per_cat[cat],
            faulty=sum(1 for rec in records if rec.faults and not rec.low_info),
            duplicates=sum(1 for rec in records if rec.dup_kind not in ("", "original")),
            low_info=sum(1 for rec in records if rec.low_info),
            redrawn=seen.redrawn,
        )
    if text_only:
        text_rows = text_only_rows(text_only, seed, heldout)
        rows += truth_rows(text_rows, write_text_only(root, text_rows))
    write_truth(root / "truth.parquet", rows)
    kit = {
        "version": KIT_VERSION,
        "n": n,
        "format": fmt,
        "faults": faults,
        "seed": seed,
        "min_side": min_side,
        "max_side": max_side,
        "heldout": heldout,
        "text_only": text_only,
        "categories": list(CATEGORIES),
        "records": {c: summary.categories[c].records for c in CATEGORIES},
        "redrawn": {c: summary.categories[c].redrawn for c in CATEGORIES},
    }
    (root / "kit.json").write_text(json.dumps(kit, sort_keys=True, indent=2) + "\n")
    return summary

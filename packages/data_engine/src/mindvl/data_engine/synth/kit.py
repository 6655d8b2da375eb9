"""``generate_corpus``: render, plant, duplicate, write, and record the truth.

Per category: ``n`` originals (split round-robin over categories), each faulted with
probability ``faults``; about ``faults * n`` extra duplicate records of clean originals;
about ``faults * n / 2`` low-info hard negatives, every other one with a near duplicate.
Records are shuffled per category before ids are assigned, so an id says nothing about
whether a record is faulty, a duplicate or a hard negative."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from mindvl.data_engine.synth import seeding as S
from mindvl.data_engine.synth.charts import render_chart
from mindvl.data_engine.synth.dups import make_duplicate, pick_kind
from mindvl.data_engine.synth.encoding import choose_format, encode
from mindvl.data_engine.synth.faults import pick_fault
from mindvl.data_engine.synth.grounding import render_grounding
from mindvl.data_engine.synth.lowinfo import render_low_info
from mindvl.data_engine.synth.ocr import render_ocr
from mindvl.data_engine.synth.planting import make_record
from mindvl.data_engine.synth.records import CATEGORIES, FORMATS, CategoryCounts, KitSummary, Record
from mindvl.data_engine.synth.scenes import render_scene
from mindvl.data_engine.synth.truth import truth_row, write_truth
from mindvl.data_engine.synth.writers import WRITERS

KIT_VERSION = 1
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


def build_category(
    category: str, fmt: str, n: int, n_dups: int, n_low: int, rate: float, seed: int,
    heldout: bool, min_side: int, max_side: int, next_group: int,
) -> tuple[list[Record], int]:  # fmt: skip
    """The category's records (ids not yet assigned) and the next free dup group id."""

    def rng(index: int, purpose: int):
        return S.stream_rng(seed, heldout, category, index, purpose)

    originals = []
    for i in range(n):
        r = rng(i, S.RENDER)
        rendered = RENDERERS[category](r, min_side, max_side)
        image_format, quality = choose_format(r)
        fault_rng = rng(i, S.FAULT)
        fault = pick_fault(fault_rng, rate, fmt)
        originals.append(
            make_record(rendered, category, image_format, quality, fault, fault_rng, fmt)
        )

    extras: list[Record] = []
    clean = [i for i, rec in enumerate(originals) if not rec.faults]
    if clean and n_dups:
        order = rng(0, S.DUP_PICK).permutation(len(clean))
        sources = sorted(clean[int(order[j % len(clean)])] for j in range(n_dups))
        groups: dict[int, int] = {}
        for j, src in enumerate(sources):
            if src not in groups:
                groups[src] = next_group
                next_group += 1
                originals[src] = replace(originals[src], dup_group=groups[src], dup_kind="original")
            source = originals[src]
            dup_rng = rng(j, S.DUPLICATE)
            dup = make_duplicate(
                dup_rng, source.image, source.image_format, pick_kind(dup_rng, category)
            )
            extras.append(replace(source, image=dup.image, image_format=dup.image_format, width=dup.width,
                                  height=dup.height, dup_group=groups[src], dup_kind=dup.dup_kind))  # fmt: skip

    for j in range(n_low):
        r = rng(j, S.LOW_INFO)
        rendered = render_low_info(r, category, min_side, max_side)
        image_format = "png" if rendered.low_info_kind == "icon" or r.random() < 0.4 else "jpg"
        data = encode(rendered.image, image_format, int(r.integers(85, 96)))
        w, h = rendered.image.size
        text = rendered.caption
        low = Record("", category, data, image_format, w, h, text.encode(), rendered.question,
                     rendered.answer, text, faults=("low_info",), low_info=True)  # fmt: skip
        if j % 2 == 0:
            low = replace(low, dup_group=next_group, dup_kind="original")
            next_group += 1
            kind = LOW_INFO_DUP_KIND[rendered.low_info_kind]
            dup = make_duplicate(rng(j, S.LOW_INFO_DUP), data, image_format, kind)
            extras.append(replace(low, image=dup.image, image_format=dup.image_format, width=dup.width,
                                  height=dup.height, dup_kind=dup.dup_kind))  # fmt: skip
        extras.append(low)
    return originals + extras, next_group


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
) -> KitSummary:
    """Write a synthetic corpus under ``out`` (which must be empty or absent)."""
    check_arguments(n, fmt, faults, seed, min_side, max_side)
    root = Path(out)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ValueError(f"output directory {root} exists and is not empty")
    root.mkdir(parents=True, exist_ok=True)

    per_cat = split_round_robin(n)
    dups = split_round_robin(round(faults * n))
    lows = split_round_robin(round(faults * n / 2))
    summary = KitSummary(out=str(root), fmt=fmt)
    rows: list[dict[str, object]] = []
    next_group = 0
    for cat in CATEGORIES:
        records, next_group = build_category(
            cat,
            fmt,
            per_cat[cat],
            dups[cat],
            lows[cat],
            faults,
            seed,
            heldout,
            min_side,
            max_side,
            next_group,
        )
        records = assign_ids(records, cat, seed, heldout)
        paths = WRITERS[fmt](root, cat, records)
        rows += [truth_row(rec, fmt, paths[rec.id]) for rec in records]
        summary.categories[cat] = CategoryCounts(
            records=len(records),
            originals=per_cat[cat],
            faulty=sum(1 for rec in records if rec.faults and not rec.low_info),
            duplicates=sum(1 for rec in records if rec.dup_kind not in ("", "original")),
            low_info=sum(1 for rec in records if rec.low_info),
        )
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
        "categories": list(CATEGORIES),
        "records": {c: summary.categories[c].records for c in CATEGORIES},
    }
    (root / "kit.json").write_text(json.dumps(kit, sort_keys=True, indent=2) + "\n")
    return summary

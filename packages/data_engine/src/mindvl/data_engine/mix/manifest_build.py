"""Assembling the :class:`RatioManifest` of a stage from accounting, selection and shards."""

from __future__ import annotations

import hashlib
from collections import Counter

from mindvl.common.manifest import (
    CategoryMix,
    FunnelEntry,
    MixtureRecord,
    RatioManifest,
    RecipeRecord,
    ShardRecord,
    SourceFunnel,
)
from mindvl.common.recipe import MixtureSpec, Recipe
from mindvl.data_engine.accounting import BuildAccounting
from mindvl.data_engine.mix.provenance import code_version, tokenizer_record
from mindvl.data_engine.mix.selection import Item, Pick, Selection

STAGE_ORDER = {"read": 0, "filter": 1, "dedup": 2, "caption": 3, "mix": 4}
MIX_STAGE, MIX_OP, NOT_SELECTED = "mix", "mixture", "not_selected"


def unpicked(items: list[Item], ordered: list[Pick]) -> list[Item]:
    """Kept samples that no pick used (in ``items`` order)."""
    used = {p.item.key for p in ordered}
    return [i for i in items if i.key not in used]


def not_selected(items: list[Item], ordered: list[Pick]) -> list[FunnelEntry]:
    """One funnel entry per source for kept samples that no pick used."""
    counts = Counter(i.source for i in unpicked(items, ordered))
    return [
        FunnelEntry(source=s, stage=MIX_STAGE, op=MIX_OP, reason=NOT_SELECTED, count=n)
        for s, n in sorted(counts.items())
    ]


def merge_funnel(entries: list[FunnelEntry]) -> list[FunnelEntry]:
    """Sum entries with the same (source, stage, op, reason); canonical order."""
    total: Counter = Counter()
    for e in entries:
        total[(e.source, e.stage, e.op, e.reason)] += e.count
    keys = sorted(total, key=lambda k: (k[0], STAGE_ORDER.get(k[1], 9), k[2], k[3]))
    return [
        FunnelEntry(source=k[0], stage=k[1], op=k[2], reason=k[3], count=total[k])
        for k in keys
        if total[k]
    ]


def source_funnel(
    recipe: Recipe,
    acc: BuildAccounting,
    items: list[Item],
    ordered: list[Pick],
    funnel: list[FunnelEntry],
) -> list[SourceFunnel]:
    """input = kept in shards (distinct originals) + every drop, per source."""
    given = {s.source: s for s in acc.sources}
    staged = Counter(i.source for i in items)
    shipped = Counter(p.item.source for p in ordered if p.repeat == 0)
    dropped = Counter()
    for e in funnel:
        dropped[e.source] += e.count
    out = []
    for spec in sorted(recipe.sources, key=lambda s: s.name):
        name = spec.name
        pre_mix = sum(e.count for e in funnel if e.source == name and e.stage != "mix")
        inp = given[name].input if name in given else staged[name] + pre_mix
        out.append(
            SourceFunnel(
                source=name,
                category=spec.category,
                input=inp,
                kept=shipped[name],
                dropped=dropped[name],
            )
        )
    return out


def category_mix(spec: MixtureSpec, sel: Selection, categories: list[str]) -> list[CategoryMix]:
    all_samples = sum(len(v) for v in sel.picks.values()) or 1
    all_tokens = sum(p.item.tokens for v in sel.picks.values() for p in v) or 1
    out = []
    for cat in categories:
        avail = sel.available.get(cat, [])
        picks = sel.picks.get(cat, [])
        img = sum(p.item.image_tokens for p in picks)
        txt = sum(p.item.text_tokens for p in picks)
        out.append(
            CategoryMix(
                category=cat,
                available_samples=len(avail),
                available_tokens=sum(i.tokens for i in avail),
                target_fraction=spec.targets.get(cat, 0.0),
                selected_unique=sum(1 for p in picks if p.repeat == 0),
                repeats=sum(1 for p in picks if p.repeat > 0),
                samples=len(picks),
                image_tokens=img,
                text_tokens=txt,
                achieved_fraction_samples=round(len(picks) / all_samples, 12),
                achieved_fraction_tokens=round((img + txt) / all_tokens, 12),
            )
        )
    return out


def keys_digest(ordered: list[Pick]) -> str:
    return hashlib.sha256("\n".join(p.key for p in ordered).encode()).hexdigest()


def build_manifest(
    recipe: Recipe,
    record: RecipeRecord,
    acc: BuildAccounting,
    items: list[Item],
    sel: Selection,
    ordered: list[Pick],
    shards: list[ShardRecord],
) -> RatioManifest:
    spec = recipe.mixture
    assert spec is not None
    mix_entries = not_selected(items, ordered)
    funnel = merge_funnel(list(acc.funnel) + mix_entries)
    categories = sorted({s.category for s in recipe.sources} | set(spec.targets))
    return RatioManifest(
        name=recipe.name,
        stage=recipe.stage,
        code_version=code_version(),
        seed=recipe.seed,
        recipe=record,
        tokenizer=tokenizer_record(recipe.tokenizer),
        image_tokens=recipe.image_tokens,
        inputs=sorted(acc.inputs, key=lambda f: (f.source, f.path)),
        sources=source_funnel(recipe, acc, items, ordered, funnel),
        funnel=funnel,
        dedup=acc.dedup,
        mixture=MixtureRecord(
            unit=spec.unit,
            budget=spec.budget,
            max_repeat=spec.max_repeat,
            shortfall=spec.shortfall,
            rebalanced=sel.rebalanced,
            categories=category_mix(spec, sel, categories),
        ),
        shards=shards,
        total_samples=len(ordered),
        total_image_tokens=sum(p.item.image_tokens for p in ordered),
        total_text_tokens=sum(p.item.text_tokens for p in ordered),
        selected_keys_digest=keys_digest(ordered),
    )

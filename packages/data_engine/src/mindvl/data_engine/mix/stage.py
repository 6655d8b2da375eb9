"""``write_stage``: kept candidates in, shards + manifest + index + report out.

Order of work: read the staging Parquet files batch by batch (image bytes go to a scratch
spill file, records are sorted by key), count tokens, select to the mixture, interleave,
plan shards, write or reuse shards (resumable), then write ``index.parquet``, the unpicked
samples into ``rejects.parquet`` (``rejects.py``), ``manifest.json`` and ``report.html``
atomically. Everything written is a function of the recipe and the set of staged rows, so
reruns give the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from mindvl.common.errors import UserError
from mindvl.common.manifest import (
    INDEX_NAME,
    MANIFEST_NAME,
    REJECTS_NAME,
    RatioManifest,
    RecipeRecord,
)
from mindvl.common.recipe import MixtureSpec, Recipe
from mindvl.common.shard_format import image_width, sample_member_names, sample_members
from mindvl.data_engine.accounting import BuildAccounting
from mindvl.data_engine.mix.index import index_row, write_index
from mindvl.data_engine.mix.manifest_build import build_manifest
from mindvl.data_engine.mix.rejects import record_not_selected
from mindvl.data_engine.mix.report import write_report
from mindvl.data_engine.mix.samples import load_kept, pick_sample
from mindvl.data_engine.mix.selection import Item, interleave, select
from mindvl.data_engine.mix.shard_writer import Member, plan_shards, write_shards
from mindvl.data_engine.mix.spill import SPILL_NAME, ImageSpill


def take_all(items: list[Item]) -> MixtureSpec:
    """The mixture of a recipe without one: every kept sample once, in its natural ratio."""
    if not items:
        raise UserError("nothing to write: no samples survived filtering and dedup")
    counts: dict[str, int] = {}
    for it in items:
        counts[it.category] = counts.get(it.category, 0) + 1
    targets = {c: n / len(items) for c, n in sorted(counts.items())}
    return MixtureSpec(unit="samples", budget=len(items), targets=targets)


def write_stage(
    staging_dir: Path,
    recipe: Recipe,
    recipe_record: RecipeRecord,
    out_dir: Path,
    accounting: BuildAccounting,
) -> RatioManifest:
    """Mix the kept rows in ``staging_dir`` into ``out_dir``; see the module docstring."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ImageSpill(out_dir / SPILL_NAME) as spill:
        kept = load_kept(Path(staging_dir), recipe, spill)
        items = [k.item for k in kept.values()]
        if recipe.mixture is None:
            recipe = recipe.model_copy(update={"mixture": take_all(items)})
        spec = recipe.mixture
        assert spec is not None
        selection = select(items, spec, recipe.seed)
        ordered = interleave(selection.picks, spec.unit)
        samples = [pick_sample(kept[p.item.key], p) for p in ordered]
        jsons = [s.to_json_bytes() for s in samples]  # for sizes and digests in the plan
        width = image_width(samples)  # the same members in every sample's group

        def members(i: int) -> list[Member]:
            s = samples[i]
            spans = kept[ordered[i].item.key].spans
            sizes = [len(jsons[i]), *(span[1] for span in spans)]
            shas = [_sha(jsons[i]), *(im.sha256 for im in s.images)]
            names = sample_member_names(s, width)
            pad = len(names) - len(sizes)
            return [
                Member(n, size, sha)
                for n, size, sha in zip(
                    names, sizes + [0] * pad, shas + [EMPTY_SHA256] * pad, strict=True
                )
            ]

        def member_data(i: int) -> Iterator[tuple[str, bytes]]:
            spans = kept[ordered[i].item.key].spans
            yield from sample_members(samples[i], [spill.read(span) for span in spans], width)

        plan = plan_shards(
            recipe.stage,
            [members(i) for i in range(len(samples))],
            recipe.shards.max_samples,
            recipe.shards.max_bytes,
        )
        records = write_shards(out_dir, recipe.stage, plan, member_data)

    rows = []
    for shard in plan:
        rows += [index_row(samples[i], shard.name) for i in range(shard.start, shard.stop)]
    write_index(out_dir / INDEX_NAME, rows)
    record_not_selected(out_dir / REJECTS_NAME, items, ordered)
    manifest = build_manifest(recipe, recipe_record, accounting, items, selection, ordered, records)
    manifest.save(out_dir / MANIFEST_NAME)
    write_report(out_dir, manifest)
    return manifest


EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # of b""


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()

"""What changed between two builds: mixture, sources, recipe, funnel, samples, shards.

The result is a plain JSON-able dict (``--json`` prints it as is); the renderers in
:mod:`diff_render` and the tolerance checks in :mod:`drift` read the same dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mindvl.common.manifest import RatioManifest
from mindvl.data_engine.manifest_cli.index_diff import index_changes
from mindvl.data_engine.manifest_cli.recipe_diff import recipe_changes
from mindvl.data_engine.mix.provenance import same_code


def _categories(a: RatioManifest, b: RatioManifest) -> list[dict[str, Any]]:
    ca = {c.category: c for c in a.mixture.categories}
    cb = {c.category: c for c in b.mixture.categories}
    rows = []
    for cat in sorted(set(ca) | set(cb)):
        x, y = ca.get(cat), cb.get(cat)

        def val(c, f):
            return 0 if c is None else getattr(c, f)

        ta = val(x, "image_tokens") + val(x, "text_tokens")
        tb = val(y, "image_tokens") + val(y, "text_tokens")
        rows.append(
            {
                "category": cat,
                "target_a": val(x, "target_fraction"),
                "target_b": val(y, "target_fraction"),
                "ratio_samples_a": val(x, "achieved_fraction_samples"),
                "ratio_samples_b": val(y, "achieved_fraction_samples"),
                "ratio_samples_delta": val(y, "achieved_fraction_samples")
                - val(x, "achieved_fraction_samples"),
                "ratio_tokens_a": val(x, "achieved_fraction_tokens"),
                "ratio_tokens_b": val(y, "achieved_fraction_tokens"),
                "ratio_tokens_delta": val(y, "achieved_fraction_tokens")
                - val(x, "achieved_fraction_tokens"),
                "samples_a": val(x, "samples"),
                "samples_b": val(y, "samples"),
                "samples_delta": val(y, "samples") - val(x, "samples"),
                "tokens_a": ta,
                "tokens_b": tb,
                "tokens_delta": tb - ta,
            }
        )
    return rows


def _funnel(a: RatioManifest, b: RatioManifest) -> list[dict[str, Any]]:
    def counts(m: RatioManifest) -> dict[tuple, int]:
        return {(f.source, f.stage, f.op, f.reason): f.count for f in m.funnel}

    fa, fb = counts(a), counts(b)
    rows = []
    for k in sorted(set(fa) | set(fb)):
        x, y = fa.get(k, 0), fb.get(k, 0)
        if x != y:
            rows.append(
                {
                    "source": k[0],
                    "stage": k[1],
                    "op": k[2],
                    "reason": k[3],
                    "a": x,
                    "b": y,
                    "delta": y - x,
                }
            )
    sa = {s.source: s for s in a.sources}
    sb = {s.source: s for s in b.sources}
    for name in sorted(set(sa) & set(sb)):
        for f in ("input", "kept"):
            x, y = getattr(sa[name], f), getattr(sb[name], f)
            if x != y:
                rows.append(
                    {
                        "source": name,
                        "stage": "total",
                        "op": f,
                        "reason": "",
                        "a": x,
                        "b": y,
                        "delta": y - x,
                    }
                )
    return rows


def _shards(a: RatioManifest, b: RatioManifest) -> dict[str, list[str]]:
    sa = {s.name: s.sha256 for s in a.shards}
    sb = {s.name: s.sha256 for s in b.shards}
    return {
        "added": sorted(set(sb) - set(sa)),
        "removed": sorted(set(sa) - set(sb)),
        "changed": sorted(n for n in set(sa) & set(sb) if sa[n] != sb[n]),
        "unchanged": len([n for n in set(sa) & set(sb) if sa[n] == sb[n]]),
    }


def diff_manifests(
    a: RatioManifest, a_dir: Path, b: RatioManifest, b_dir: Path, list_keys: bool = False
) -> dict[str, Any]:
    src_a = {s.source for s in a.sources}
    src_b = {s.source for s in b.sources}
    idx_a, idx_b = a_dir / a.index, b_dir / b.index
    return {
        "a": {
            "path": str(a_dir),
            "name": a.name,
            "stage": a.stage,
            "recipe_digest": a.recipe.digest,
            "code_version": a.code_version,
        },
        "b": {
            "path": str(b_dir),
            "name": b.name,
            "stage": b.stage,
            "recipe_digest": b.recipe.digest,
            "code_version": b.code_version,
        },
        "unit": b.mixture.unit,
        "totals": {
            "samples_a": a.total_samples,
            "samples_b": b.total_samples,
            "tokens_a": a.total_image_tokens + a.total_text_tokens,
            "tokens_b": b.total_image_tokens + b.total_text_tokens,
            "rebalanced_a": a.mixture.rebalanced,
            "rebalanced_b": b.mixture.rebalanced,
        },
        "categories": _categories(a, b),
        "sources": {"added": sorted(src_b - src_a), "removed": sorted(src_a - src_b)},
        "recipe": recipe_changes(a.recipe, b.recipe),
        "funnel": _funnel(a, b),
        "samples": index_changes(idx_a, idx_b, list_keys)
        if idx_a.is_file() and idx_b.is_file()
        else None,
        "shards": _shards(a, b),
        "selected_keys_same": a.selected_keys_digest == b.selected_keys_digest,
        "code_same": same_code(a.code_version, b.code_version),
    }

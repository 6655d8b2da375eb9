"""Report sections for the data builds: mixture (target vs achieved, by samples and by
tokens) and the funnel per source (input, kept, dropped by reason).

Read from each build's ``manifest.json`` (the :class:`~mindvl.common.manifest.RatioManifest`
JSON, parsed as a dict so a missing field shows "n/a"), cross-checked against
``index.parquet`` (rows per category) and ``rejects.parquet`` (rows per source).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from mindvl.common.manifest import INDEX_NAME, MANIFEST_NAME, REJECTS_NAME
from mindvl.common.report.charts import grouped_bars, nice_max, stacked_hbars
from mindvl.common.report.document import NA, Chart, Section, Table, fmt
from mindvl.common.report.inputs import get, number, read_json, read_parquet

MAX_REASONS = 8  # funnel legend: the commonest reasons, the rest summed as "other reasons"


def mixture_section(name: str, manifest: dict) -> Section:
    s = Section(f"Mixture: {name}")
    cats = [c for c in get(manifest, "mixture", "categories", default=[]) if isinstance(c, dict)]
    unit = get(manifest, "mixture", "unit", default=NA)
    budget = get(manifest, "mixture", "budget")
    s.add(
        f"Stage {get(manifest, 'stage', default=NA)}, budget {fmt(budget)} {unit}, "
        f"{fmt(get(manifest, 'total_samples'))} samples, "
        f"{fmt(get(manifest, 'total_image_tokens'))} image + "
        f"{fmt(get(manifest, 'total_text_tokens'))} text tokens, "
        f"rebalanced: {fmt(get(manifest, 'mixture', 'rebalanced'))}."
    )
    if not cats:
        return s.add("Mixture: n/a (the manifest lists no categories).")
    names = [str(get(c, "category", default=NA)) for c in cats]
    target = [number(get(c, "target_fraction")) for c in cats]
    by_samples = [number(get(c, "achieved_fraction_samples")) for c in cats]
    by_tokens = [number(get(c, "achieved_fraction_tokens")) for c in cats]
    top = nice_max(max([v for v in target + by_samples + by_tokens if v is not None] + [0.01]))
    series = {"target": target, "achieved (samples)": by_samples, "achieved (tokens)": by_tokens}
    s.add(Chart(grouped_bars(f"{name}: mixture fractions", names, series, top, "fraction"),
                f"{name}: target vs achieved fraction per category"))  # fmt: skip
    rows = [
        [n, fmt(t), fmt(a), fmt(b), fmt(get(c, "samples")), fmt(get(c, "repeats")),
         fmt(get(c, "image_tokens")), fmt(get(c, "text_tokens"))]
        for n, t, a, b, c in zip(names, target, by_samples, by_tokens, cats, strict=True)
    ]  # fmt: skip
    return s.add(Table(["category", "target", "achieved (samples)", "achieved (tokens)",
                        "samples", "repeats", "image tokens", "text tokens"], rows))  # fmt: skip


def _reason(entry: dict) -> str:
    return f"{get(entry, 'op', default=NA)}: {get(entry, 'reason', default=NA)}"


def funnel_section(name: str, manifest: dict) -> Section:
    s = Section(f"Funnel: {name}")
    sources = [x for x in get(manifest, "sources", default=[]) if isinstance(x, dict)]
    if not sources:
        return s.add("Funnel: n/a (the manifest lists no sources).")
    drops: dict[str, Counter] = defaultdict(Counter)
    for e in get(manifest, "funnel", default=[]):
        if isinstance(e, dict):
            drops[str(get(e, "source", default=NA))][_reason(e)] += int(number(e.get("count")) or 0)
    totals = Counter()
    for c in drops.values():
        totals.update(c)
    shown = [r for r, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_REASONS]]
    names = [str(get(x, "source", default=NA)) for x in sources]
    segments: dict[str, list[float]] = {
        "kept": [float(number(get(x, "kept")) or 0) for x in sources]
    }
    for r in shown:
        segments[f"dropped {r}"] = [float(drops[n][r]) for n in names]
    if len(totals) > len(shown):
        segments["dropped: other reasons"] = [
            float(sum(v for r, v in drops[n].items() if r not in shown)) for n in names
        ]
    s.add(Chart(stacked_hbars(f"{name}: funnel per source", names, segments),
                f"{name}: samples kept and dropped (by op: reason) per source"))  # fmt: skip
    rows = []
    for x, n in zip(sources, names, strict=True):
        reasons = ", ".join(f"{r} = {v}" for r, v in sorted(drops[n].items())) or "none"
        rows.append([n, fmt(get(x, "category")), fmt(get(x, "input")), fmt(get(x, "kept")),
                     fmt(get(x, "dropped")), reasons])  # fmt: skip
    return s.add(
        Table(["source", "category", "input", "kept", "dropped", "dropped by reason"], rows)
    )


def _cross_checks(build: Path, manifest: dict | None) -> str:
    index = read_parquet(build / INDEX_NAME, ["category", "image_tokens", "text_tokens"])
    rejects = read_parquet(build / REJECTS_NAME, ["source", "reason"])
    parts = []
    if index.ok:
        per_cat = Counter(index.data.get("category", []))
        detail = ", ".join(
            f"{k}: {v}" for k, v in sorted(per_cat.items(), key=lambda kv: str(kv[0]))
        )
        total = get(manifest, "total_samples")
        agree = NA if total is None else fmt(index.extra["rows"] == total)
        parts.append(f"{INDEX_NAME}: {index.extra['rows']} rows ({detail or 'no category column'});"
                     f" matches the manifest's total_samples: {agree}.")  # fmt: skip
    else:
        parts.append(f"{INDEX_NAME}: n/a ({index.note}).")
    if rejects.ok:
        funnel_total = sum(
            int(number(get(e, "count")) or 0) for e in get(manifest, "funnel", default=[])
        )
        parts.append(f"{REJECTS_NAME}: {rejects.extra['rows']} rows"
                     f" (funnel drops in the manifest: {funnel_total if manifest else NA}).")  # fmt: skip
    else:
        parts.append(f"{REJECTS_NAME}: n/a ({rejects.note}).")
    return " ".join(parts)


def build_sections(builds: dict[str, Path]) -> Section:
    """Mixture and funnel per build, in the order the demo ran them."""
    top = Section("Data builds")
    if not builds:
        return top.add("Data builds: n/a (none given).")
    for name, build in builds.items():
        loaded = read_json(Path(build) / MANIFEST_NAME)
        s = Section(f"Build {name}")
        s.add(f"Directory: {build}")
        if not loaded.ok:
            s.add(f"Manifest: n/a ({loaded.note}).")
        else:
            s.add(mixture_section(name, loaded.data), funnel_section(name, loaded.data))
        s.add(_cross_checks(Path(build), loaded.data))
        top.add(s)
    return top

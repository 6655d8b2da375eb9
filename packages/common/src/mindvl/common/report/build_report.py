"""One build's summary as a :class:`Document`: the build's ``report.html`` (and Markdown).

Built from the manifest (as a dict, so a missing field shows "n/a"), a few sample
thumbnails with their text, and the build's timings when known. Sections: the funnel per
source through the stages (read -> filters -> dedup -> caption -> mix) and by drop reason,
the mixture (target vs achieved fractions, samples and tokens per category), samples,
timings and shards. The mixture and reason funnel are the demo report's own sections.
"""

from __future__ import annotations

from mindvl.common.report.charts import grouped_bars, stacked_bars, stacked_hbars
from mindvl.common.report.data_sections import funnel_section, mixture_section
from mindvl.common.report.document import NA, Chart, Document, Gallery, Section, Table, Thumb, fmt
from mindvl.common.report.inputs import get, number

STAGES = ("read", "filter", "dedup", "caption", "mix")
AFTER = {"read": "after read", "filter": "after filters", "dedup": "after dedup",
         "caption": "after captioning", "mix": "in shards"}  # fmt: skip


def headline(m: dict) -> str:
    rebalanced = " (rebalanced after a shortfall)" if get(m, "mixture", "rebalanced") else ""
    return (
        f"{fmt(get(m, 'total_samples'))} samples, {fmt(get(m, 'total_image_tokens'))} image + "
        f"{fmt(get(m, 'total_text_tokens'))} text tokens in {len(get(m, 'shards', default=[]))}"
        f" shards; budget {fmt(get(m, 'mixture', 'budget'))} {get(m, 'mixture', 'unit', default=NA)}"
        f"{rebalanced}; seed {fmt(get(m, 'seed'))}; code {get(m, 'code_version', default=NA)}"
    )


def stage_counts(m: dict) -> tuple[list[str], dict[str, list[float]]]:
    """(sources, series): samples of each source left after each stage, from ``input``."""
    sources = [s for s in get(m, "sources", default=[]) if isinstance(s, dict)]
    names = [str(get(s, "source", default=NA)) for s in sources]
    drops = {(n, st): 0 for n in names for st in STAGES}
    for e in get(m, "funnel", default=[]):
        key = (str(get(e, "source", default=NA)), get(e, "stage"))
        if key in drops:
            drops[key] += int(number(get(e, "count")) or 0)
    series: dict[str, list[float]] = {"input": [number(get(s, "input")) or 0 for s in sources]}
    left = list(series["input"])
    for st in STAGES:
        left = [v - drops[(n, st)] for v, n in zip(left, names, strict=True)]
        if st != "caption" or any(drops[(n, st)] for n in names):  # captioning rarely drops
            series[AFTER[st]] = list(left)
    return names, series


def stage_funnel_section(m: dict) -> Section:
    s = Section("Funnel by stage")
    names, series = stage_counts(m)
    if not names:
        return s.add("Funnel by stage: n/a (the manifest lists no sources).")
    chart = grouped_bars("samples left after each stage", names, series, None, "samples")
    s.add(Chart(chart, "per source: input, then what is left after each stage"))
    rows = [[n, *(fmt(int(v[i])) for v in series.values())] for i, n in enumerate(names)]
    return s.add(Table(["source", *series], rows))


def mixture_volume_section(m: dict) -> Section:
    s = Section("Mixture by samples and by tokens")
    cats = [c for c in get(m, "mixture", "categories", default=[]) if isinstance(c, dict)]
    if not cats:
        return s.add("Mixture: n/a (the manifest lists no categories).")
    names = [str(get(c, "category", default=NA)) for c in cats]

    def col(field: str) -> list[float]:
        return [float(number(get(c, field)) or 0) for c in cats]

    unique = col("selected_unique")
    repeats = col("repeats")
    s.add(Chart(stacked_bars("samples per category", names,
                             {"unique": unique, "repeats": repeats}, "samples"),
                "samples per category in the shards (upsampled repeats on top)"))  # fmt: skip
    s.add(Chart(stacked_bars("tokens per category", names,
                             {"image tokens": col("image_tokens"), "text tokens": col("text_tokens")},
                             "tokens"),
                "LLM tokens per category in the shards, image and text"))  # fmt: skip
    return s


def gallery_section(thumbs: dict[str, list[Thumb]]) -> Section:
    s = Section("Samples")
    if not thumbs:
        return s.add("Samples: none (no sample with an image in the shards).")
    for cat in sorted(thumbs):
        s.add(Section(cat).add(Gallery(thumbs[cat])))
    return s


def timings_section(timings: dict[str, float] | None) -> Section:
    s = Section("Timings")
    if not timings:
        return s.add("Timings: n/a (not recorded for this report).")
    names = list(timings)
    secs = [float(v) for v in timings.values()]
    total = sum(secs)
    s.add(Chart(stacked_hbars("wall-clock seconds per phase", names, {"seconds": secs}, "seconds"),
                "wall-clock seconds of each phase of the build"))  # fmt: skip
    rows = [
        [n, fmt(v, 1), fmt(v / total if total else None)] for n, v in zip(names, secs, strict=True)
    ]
    rows.append(["total", fmt(total, 1), fmt(1.0 if total else None)])
    return s.add(Table(["phase", "seconds", "share"], rows))


def shards_section(m: dict) -> Section:
    rows = [[str(get(x, "name", default=NA)), fmt(get(x, "samples")), fmt(get(x, "bytes")),
             str(get(x, "sha256", default=NA))[:16]] for x in get(m, "shards", default=[])]  # fmt: skip
    return Section("Shards").add(Table(["shard", "samples", "bytes", "sha256"], rows))


def build_document(
    manifest: dict, thumbs: dict[str, list[Thumb]], timings: dict[str, float] | None = None
) -> Document:
    name = f"{get(manifest, 'name', default=NA)} / {get(manifest, 'stage', default=NA)}"
    label = str(get(manifest, "stage", default="build"))
    sections = [
        stage_funnel_section(manifest),
        funnel_section(label, manifest),
        mixture_section(label, manifest),
        mixture_volume_section(manifest),
        gallery_section(thumbs),
        timings_section(timings),
        shards_section(manifest),
    ]
    return Document(name, headline(manifest), sections)

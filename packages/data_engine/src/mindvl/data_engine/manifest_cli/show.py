"""``mindvl manifest show M [--markdown]``: a readable summary of one manifest.

``--markdown`` prints the build summary that ``report.html`` renders (the same
:func:`~mindvl.common.report.build_report.build_document`), as Markdown.
"""

from __future__ import annotations

import click

from mindvl.common.manifest import RatioManifest
from mindvl.data_engine.manifest_cli.load import load
from mindvl.data_engine.manifest_cli.text_table import text_table


def summary(m: RatioManifest) -> str:
    mix = m.mixture
    head = (
        f"{m.name} / stage {m.stage}  (code {m.code_version}, seed {m.seed}, recipe {m.recipe.digest[:12]})\n"
        f"{m.total_samples} samples, {m.total_image_tokens} image + {m.total_text_tokens} text tokens, "
        f"{len(m.shards)} shards; budget {mix.budget} {mix.unit}, max_repeat {mix.max_repeat:g}, "
        f"shortfall {mix.shortfall}{' (REBALANCED)' if mix.rebalanced else ''}"
    )
    cats = text_table(
        [
            "category",
            "target",
            "achieved(samples)",
            "achieved(tokens)",
            "samples",
            "unique",
            "repeats",
            "tokens",
            "available",
        ],
        [
            [
                c.category,
                c.target_fraction,
                c.achieved_fraction_samples,
                c.achieved_fraction_tokens,
                c.samples,
                c.selected_unique,
                c.repeats,
                c.image_tokens + c.text_tokens,
                c.available_samples,
            ]
            for c in mix.categories
        ],
    )
    sources = text_table(
        ["source", "category", "input", "kept", "dropped"],
        [[s.source, s.category, s.input, s.kept, s.dropped] for s in m.sources],
    )
    funnel = text_table(
        ["source", "stage", "op", "reason", "count"],
        [[f.source, f.stage, f.op, f.reason, f.count] for f in m.funnel],
    )
    shards = text_table(
        ["shard", "samples", "bytes", "sha256"],
        [[s.name, s.samples, s.bytes, s.sha256[:16]] for s in m.shards],
    )
    return f"{head}\n\nMixture\n{cats}\n\nSources\n{sources}\n\nFunnel (drops)\n{funnel}\n\nShards\n{shards}"


@click.command("show")
@click.argument("manifest")
@click.option("--markdown", is_flag=True, help="the build summary of report.html, as Markdown")
def show(manifest: str, markdown: bool) -> None:
    """Summarise MANIFEST (a manifest.json or its build directory)."""
    m, root = load(manifest)
    if not markdown:
        click.echo(summary(m))
        return
    from mindvl.common.report.build_report import build_document
    from mindvl.common.report.document import render_markdown
    from mindvl.data_engine.mix.report import sample_thumbs

    click.echo(render_markdown(build_document(m.model_dump(mode="json"), sample_thumbs(root, m))))

"""``mindvl data synth``: write a synthetic corpus with planted faults and a truth table."""

from __future__ import annotations

import click

from mindvl.common.errors import UserError


@click.command("synth")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New or empty dir.")
@click.option("--n", "n", required=True, type=int, help="Original samples over all categories.")
@click.option("--format", "fmt", required=True, help="llava, webdataset, parquet or folder.")
@click.option("--faults", default=0.0, show_default=True, help="Probability of a planted fault.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--min-side", default=64, show_default=True, type=int)
@click.option("--max-side", default=512, show_default=True, type=int)
@click.option("--heldout", is_flag=True, help="Distinct id prefix and seed stream (eval sets).")
@click.option("--text-only", default=0, show_default=True, type=int,
              help="Also write this many image-free conversations to text/data.jsonl (LLaVA).")  # fmt: skip
@click.option("--qa-turns", default=1, show_default=True, type=int,
              help="Questions per conversation where an image answers several (scenes).")  # fmt: skip
@click.option("--describe", is_flag=True,
              help='End clean scene conversations with "Describe the image." and the caption.')  # fmt: skip
def synth(
    out: str,
    n: int,
    fmt: str,
    faults: float,
    seed: int,
    min_side: int,
    max_side: int,
    heldout: bool,
    text_only: int,
    qa_turns: int,
    describe: bool,
) -> None:
    """Synthesise an image-text corpus (captions, OCR, grounding, charts) with known truth."""
    from mindvl.data_engine.synth.kit import generate_corpus

    try:
        summary = generate_corpus(
            out, n, fmt, faults, seed, min_side, max_side, heldout, text_only, qa_turns, describe
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    for cat, c in summary.categories.items():
        click.echo(
            f"{cat}: {c.records} records ({c.originals} originals, {c.faulty} faulty, "
            f"{c.duplicates} duplicates, {c.low_info} low-info; {c.redrawn} drawn again as they"
            f" repeated an earlier picture) -> {summary.out}/{cat}"
        )
    if text_only:
        click.echo(f"text: {text_only} image-free conversations -> {summary.out}/text/data.jsonl")

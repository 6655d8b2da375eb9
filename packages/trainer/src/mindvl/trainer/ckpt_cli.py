"""``mindvl ckpt average``."""

from __future__ import annotations

from pathlib import Path

import click

from mindvl.common.errors import UserError


def _weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise UserError(f"--weights must be comma-separated numbers, got {text!r}") from None


@click.command("average")
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path))
@click.option("--weights", default=None, help="comma-separated, one per checkpoint (normalised)")
@click.option("--no-lineage-check", is_flag=True, help="average even without a shared ancestor")
def average(
    checkpoints: tuple[Path, ...], out: Path, weights: str | None, no_lineage_check: bool
) -> None:
    """Average CHECKPOINTS that share an ancestor (e.g. trained at different seq_len)."""
    from mindvl.trainer.averaging import average_checkpoints

    for c in checkpoints:
        if not c.is_dir():
            raise UserError(f"not a checkpoint directory: {c}")
    record = average_checkpoints(
        list(checkpoints), out, _weights(weights), check_lineage=not no_lineage_check
    )
    shown = ", ".join(f"{i['path']} x{i['weight']:.3f}" for i in record["averaged_from"])
    click.echo(f"averaged {shown} -> {out} (id {record['id'][:12]})")

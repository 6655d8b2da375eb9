"""``mindvl ckpt average`` and ``mindvl ckpt export``."""

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
    """Average CHECKPOINTS that share an ancestor (e.g. trained at different seq_len).

    Each is a model dir or a training step checkpoint (OUT/checkpoints/step-N)."""
    import tempfile

    from mindvl.trainer.averaging import average_checkpoints
    from mindvl.trainer.checkpoint import is_step_checkpoint
    from mindvl.trainer.export import export_checkpoint

    for c in checkpoints:
        if not c.is_dir():
            raise UserError(f"not a checkpoint directory: {c}")
    with tempfile.TemporaryDirectory(prefix="mindvl-average-") as tmp:
        paths = [
            export_checkpoint(c, Path(tmp) / str(i)) if is_step_checkpoint(c) else c
            for i, c in enumerate(checkpoints)
        ]
        record = average_checkpoints(
            paths, out, _weights(weights), check_lineage=not no_lineage_check
        )
    shown = ", ".join(f"{i['path']} x{i['weight']:.3f}" for i in record["averaged_from"])
    click.echo(f"averaged {shown} -> {out} (id {record['id'][:12]})")


@click.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path))
@click.option(
    "--max-shard-size", default="5GB", show_default=True,
    help="largest weight file; above it: numbered files + model.safetensors.index.json",
)  # fmt: skip
def export(checkpoint: Path, out: Path, max_shard_size: str) -> None:
    """Consolidate a training step CHECKPOINT (sharded) into a model dir."""
    from mindvl.trainer.export import export_checkpoint, parse_size
    from mindvl.trainer.model.weights_dir import weight_files

    if not checkpoint.is_dir():
        raise UserError(f"not a checkpoint directory: {checkpoint}")
    export_checkpoint(checkpoint, out, parse_size(max_shard_size))
    click.echo(f"exported {checkpoint} -> {out} ({len(weight_files(out))} weight file(s))")

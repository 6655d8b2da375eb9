"""``mindvl eval CKPT --data BUILD_DIR [--tasks TASKS.yaml] [--resolution-search] ...``.

Parses options and calls :func:`mindvl.trainer.evaluation.run.evaluate_checkpoint`; the
JSON report goes to ``--out`` (default ``CKPT/eval_report.json``), a short table to stdout
(``--json``: the report itself). On a terminal each setting shows a progress bar.
"""

from __future__ import annotations

from pathlib import Path

import click

from mindvl.common.errors import UserError


def _pixels(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--max-pixels must be comma-separated integers, got {text!r}") from None
    if not values:
        raise UserError("--max-pixels is empty")
    return values


@click.command("eval")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="held-out build dir (shards + manifest.json)")  # fmt: skip
@click.option("--tasks", "tasks_file", type=click.Path(path_type=Path), default=None,
              help="YAML of task regexes over the question (e.g. pipelines/eval/tasks.yaml)")  # fmt: skip
@click.option("--resolution-search", is_flag=True,
              help="evaluate each --max-pixels, write the best into CKPT/inference.json")  # fmt: skip
@click.option("--max-pixels", default=None,
              help="comma-separated max_pixels to evaluate (search default: 50176,100352,200704)")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="report path (default: CKPT/eval_report.json)")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), default=None, help="first N samples only")
@click.option("--predictions", type=click.Path(path_type=Path), default=None,
              help="also write one JSON line per scored item and setting")  # fmt: skip
@click.option("--seq-len", type=click.IntRange(min=16), default=4096, show_default=True,
              help="pack length for the validation loss")  # fmt: skip
@click.option("--max-patches", type=click.IntRange(min=4), default=16384, show_default=True,
              help="ViT patches per pack for the validation loss")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None,
              help="default: the checkpoint's inference.json")  # fmt: skip
@click.option("--device", default="auto", show_default=True, help="auto | npu | cuda | cpu")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: torch's, one per core)")  # fmt: skip
@click.option("--quiet", is_flag=True, help="no progress or per-setting lines")
@click.option("--json", "as_json", is_flag=True, help="print the JSON report instead of the table")
def eval_command(
    checkpoint: Path,
    data_dir: Path,
    tasks_file: Path | None,
    resolution_search: bool,
    max_pixels: str | None,
    out: Path | None,
    limit: int | None,
    predictions: Path | None,
    seq_len: int,
    max_patches: int,
    batch_size: int,
    max_new_tokens: int | None,
    device: str,
    threads: int | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Exact-match accuracy per task vs a majority baseline, and validation loss, of CHECKPOINT."""
    from mindvl.common.progress import choose_mode
    from mindvl.trainer.evaluation.report import REPORT_NAME, format_table
    from mindvl.trainer.evaluation.run import EvalOptions, evaluate_checkpoint

    if not checkpoint.is_dir():
        raise UserError(f"not a checkpoint directory: {checkpoint}")
    mode = choose_mode(quiet or as_json)
    opts = EvalOptions(
        seq_len, max_patches, batch_size, max_new_tokens, limit, device, mode, threads
    )
    quiet = quiet or as_json
    report = evaluate_checkpoint(
        checkpoint,
        data_dir,
        tasks_file,
        _pixels(max_pixels),
        resolution_search,
        opts,
        predictions,
        log=None if quiet else lambda line: click.echo(line, err=True),
    )
    target = out or checkpoint / REPORT_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(report.model_dump_json(indent=2) + "\n")
    if as_json:
        click.echo(report.model_dump_json(indent=2))
        return
    click.echo(format_table(report))
    click.echo(f"report: {target}")


if __name__ == "__main__":
    eval_command()

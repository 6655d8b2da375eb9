"""``mindvl train run STAGE.yaml [--var k=v] [--out DIR] [--resume]``.

Multi-process: ``torchrun --nproc-per-node N -m mindvl.trainer.train_cli STAGE.yaml ...``
(the same options; ``torchrun`` sets RANK/WORLD_SIZE and the loop picks them up).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from mindvl.common.progress import duration


@click.command("run")
@click.argument("stage", type=click.Path(path_type=Path))
@click.option("--var", "variables", multiple=True, help="name=value for ${name} in the config")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="default: runs/<name>")
@click.option("--resume", is_flag=True, help="continue from the latest checkpoint under --out")
def run_command(stage: Path, variables: tuple[str, ...], out: Path | None, resume: bool) -> None:
    """Train one stage (warmup / multitask / sft) as its YAML config describes."""
    from mindvl.trainer.loop import run_stage
    from mindvl.trainer.stage_config import load_stage, parse_vars

    cfg = load_stage(stage, parse_vars(variables))
    target = out or Path("runs") / cfg.name
    start = time.monotonic()
    run_stage(cfg, target, resume=resume, config_text=stage.read_text())
    if int(os.environ.get("RANK", "0")) == 0:
        took = duration(time.monotonic() - start)
        click.echo(
            f"trained {cfg.name} in {took}: model {target / 'model'}, metrics {target / 'metrics.jsonl'}"
        )


if __name__ == "__main__":
    run_command()

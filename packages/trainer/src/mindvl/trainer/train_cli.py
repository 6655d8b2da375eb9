"""``mindvl train run STAGE.yaml [--var k=v] [--out DIR] [--resume]``.

Multi-process: ``torchrun --nproc-per-node N -m mindvl.trainer.train_cli STAGE.yaml ...``
(the same options; ``torchrun`` sets RANK/WORLD_SIZE and the loop picks them up).
"""

from __future__ import annotations

from pathlib import Path

import click


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
    run_stage(cfg, out or Path("runs") / cfg.name, resume=resume, config_text=stage.read_text())


if __name__ == "__main__":
    run_command()

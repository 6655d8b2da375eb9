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


@click.command("plan")
@click.argument("stage", type=click.Path(path_type=Path))
@click.option("--world", type=int, required=True, help="ranks the layout runs on")
@click.option("--var", "variables", multiple=True, help="name=value for ${name} in the config")
@click.option(
    "--model",
    type=click.Path(path_type=Path),
    default=None,
    help="a MindVLConfig file (default: the stage's init, which reads its data manifest)",
)
@click.option(
    "--parallel",
    "layout",
    default=None,
    help='overrides of the parallel: block, e.g. "{pp: 4, ep: 8}"',
)
def plan_command(
    stage: Path, world: int, variables: tuple[str, ...], model: Path | None, layout: str | None
) -> None:
    """What each pipeline stage's ranks would hold under the stage's ``parallel:`` layout on
    WORLD ranks (laid out on the meta device with a fake process group: no device needed)."""
    import yaml

    from mindvl.common.config import load_model
    from mindvl.trainer.model.config import MindVLConfig
    from mindvl.trainer.plan import describe, plan_ranks
    from mindvl.trainer.stage_config import StageConfig, load_stage, parse_vars

    cfg = load_stage(stage, parse_vars(variables))
    if layout is not None:
        override = yaml.safe_load(layout)
        if not isinstance(override, dict):
            raise click.UsageError(f"--parallel takes a mapping, got {layout!r}")
        data = cfg.model_dump()
        data["parallel"] = {**data["parallel"], **override}
        cfg = StageConfig.model_validate(data)
    if model is not None:
        config = load_model(model, MindVLConfig)
    else:
        from mindvl.trainer.data.stream import StageData
        from mindvl.trainer.loop import model_config

        data = StageData.open(cfg.data.manifest, cfg.data.tokenizer, verify=False)
        config, _ = model_config(cfg, data, None)
    for line in describe(plan_ranks(cfg, config, world), world):
        click.echo(line)


if __name__ == "__main__":
    run_command()

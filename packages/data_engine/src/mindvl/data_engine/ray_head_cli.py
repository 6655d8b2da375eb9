"""``mindvl data ray-head``: one embedded Ray for several builds, for as long as its stdin
stays open.

Ray starts as a build starts it (``init_ray``: a head of this process's own, token auth held
in the environment, the guard that kills every process of it once this process is gone).
The command prints one JSON line, the address and the auth settings a build needs
(``mindvl data build --address ADDRESS`` with ``env`` in its environment), then waits for
its stdin to close and stops Ray. A program that runs builds in a row (``mindvl demo``)
starts it on a pipe and saves each build a Ray start-up; however that program ends, the
pipe closes and the head goes with it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from mindvl.data_engine.pipeline.ray_session import AUTH_ENV, TEMP_DIR_ENV


@click.command("ray-head")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None, help="CPUs of the Ray")
@click.option(
    "--ray-temp-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"temp dir of the Ray (default: ${TEMP_DIR_ENV}, else Ray's /tmp/ray)",
)
def ray_head_command(num_cpus: int | None, ray_temp_dir: Path | None) -> None:
    """Start an embedded Ray, print {"address", "env"} as one JSON line, stop it when stdin
    closes."""
    import ray

    from mindvl.data_engine.pipeline.ray_session import init_ray

    init_ray(None, num_cpus, str(ray_temp_dir) if ray_temp_dir else None)
    try:
        env = {k: os.environ[k] for k in AUTH_ENV if k in os.environ}
        address = ray.get_runtime_context().gcs_address
        click.echo(json.dumps({"address": address, "env": env}, sort_keys=True))
        sys.stdout.flush()
        sys.stdin.read()  # until the starting program closes the pipe (or is gone)
    finally:
        ray.shutdown()

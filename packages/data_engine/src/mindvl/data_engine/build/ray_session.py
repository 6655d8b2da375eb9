"""Connecting a build to Ray: a cluster when an address is known, else an embedded one.

Locally the workers run this very interpreter, so Ray's ``uv run`` hook (which would
rebuild the environment for the workers from the working directory, slowly) is turned
off. Against a cluster the hook stays on: that is how a ``uv run`` driver ships its
environment to nodes that lack it (see docs/RAY_JOBS.md).
"""

from __future__ import annotations

import os
from typing import Any


def init_ray(
    address: str | None = None,
    num_cpus: int | None = None,
    temp_dir: str | None = None,
    **kwargs: Any,
) -> None:
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    import ray
    from ray._private import ray_constants

    if address:
        ray.init(address=address, log_to_driver=True, **kwargs)
        return
    ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False
    extra = {"_temp_dir": temp_dir} if temp_dir else {}
    # address="local": always a fresh embedded instance; a bare ray.init() would attach to any
    # cluster already running on this machine (e.g. another user's `ray start`).
    ray.init(
        address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=True,
        **extra, **kwargs,
    )  # fmt: skip

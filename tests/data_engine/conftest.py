"""One in-process local Ray for every data-engine test that runs Ray Data in this process
(builds, dedup, captioning, reading shards): each start and stop costs seconds on a 2-core
machine. Started as a build starts it (``init_ray``: embedded, its own temp dir, the build's
Ray Data settings), stopped after the last test of this folder."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest


@pytest.fixture(scope="package")
def ray_local():
    ray = pytest.importorskip("ray")
    from ray.data import DataContext
    from ray.data.context import ShuffleStrategy

    from mindvl.data_engine.pipeline.ray_session import init_ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_raylet_start_wait_time_s", "180")  # a loaded 2-core machine
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths
    init_ray(None, num_cpus=2, temp_dir=tmp)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    # task-based sort shuffle, as a build sets it: no long-lived aggregator actors
    ctx.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    yield ray
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)

"""scripts/ray-head.sh: a head of its own runs a `uv run` job without VIRTUAL_ENV warnings
and stops completely, by its PID, leaving every other Ray on the machine alone."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ray-head.sh"
JOB = (
    "import ray; ray.init(); f = ray.remote(lambda i: i * i);"
    " print('RESULT', sum(ray.get([f.remote(i) for i in range(4)])))"
)


def processes_mentioning(text: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_own_head_runs_a_uv_job_quietly_and_stops_completely():
    if shutil.which("uv") is None:
        pytest.skip("uv not on PATH")
    head = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))  # short: Ray's socket paths
    env_lines = []
    try:
        started = subprocess.run(
            [str(SCRIPT), "start", str(head), "37"],
            capture_output=True, text=True, timeout=300,
            env={**_env(), "RAY_HEAD_ARGS": "--num-cpus 1"},
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        env_lines = [line.split(" ", 1)[1] for line in started.stdout.splitlines()]
        job_env = dict(kv.split("=", 1) for line in env_lines for kv in line.split())
        assert job_env["RAY_ADDRESS"] == "http://127.0.0.1:8302"
        job = subprocess.run(
            ["uv", "run", "--no-sync", "ray", "job", "submit", "--working-dir", ".", "--",
             "uv", "run", "python", "-c", JOB],
            cwd=ROOT, capture_output=True, text=True, timeout=400, env={**_env(), **job_env},
        )  # fmt: skip
        log = job.stdout + job.stderr
        assert job.returncode == 0, log[-2000:]
        assert "RESULT 14" in log
        assert "VIRTUAL_ENV" not in log
        assert processes_mentioning(str(head))
    finally:
        stopped = subprocess.run(
            [str(SCRIPT), "stop", str(head)], capture_output=True, text=True, timeout=120
        )
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith("unset RAY_ADDRESS")
    assert processes_mentioning(str(head)) == []
    shutil.rmtree(head, ignore_errors=True)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV"))}

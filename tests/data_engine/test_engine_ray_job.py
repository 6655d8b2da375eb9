"""A build submitted as a Ray job to a real local head on loopback (no network needed).

The head is started with ``ray start --head --block`` in its own process group, so the
test stops exactly the processes it started (never a machine-wide ``ray stop``, which
would also end other users' clusters).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _own_processes(marker: str) -> list[int]:
    """Processes whose command line names our private temp dir (all started by this test)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (d / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(d.name))
    return pids


@pytest.fixture
def ray_head():
    temp = tempfile.mkdtemp(prefix="rayj", dir="/tmp")
    port, dash = _free_port(), _free_port()
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
        "RAY_raylet_start_wait_time_s": "180",
    }
    env.pop("RAY_ADDRESS", None)
    ray_bin = str(Path(sys.executable).with_name("ray"))
    cmd = [
        ray_bin, "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash),
        "--temp-dir", temp, "--include-dashboard", "true", "--disable-usage-stats",
        # private ports: the defaults (e.g. the job agent's 52365) clash with other heads
        "--dashboard-agent-listen-port", str(_free_port()),
        "--dashboard-agent-grpc-port", str(_free_port()),
        "--metrics-export-port", str(_free_port()),
        "--ray-client-server-port", str(_free_port()),
        "--runtime-env-agent-port", str(_free_port()),
    ]  # fmt: skip
    head = subprocess.Popen(
        cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{dash}"
    try:
        from ray.job_submission import JobSubmissionClient

        deadline = time.monotonic() + 150
        client = None
        while client is None:
            if head.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray head did not come up (exit {head.poll()})")
            try:
                client = JobSubmissionClient(url)
            except Exception:
                time.sleep(1)
        yield client
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            head.wait(5)  # `ray start --block` often outlives SIGTERM: then it is killed
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)
        for pid in _own_processes(temp):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_build_runs_as_a_ray_job(ray_head, tmp_path):
    from ray.job_submission import JobStatus

    from mindvl.common.tokenizer_train import train_bpe_tokenizer
    from mindvl.data_engine.synth.kit import generate_corpus

    generate_corpus(tmp_path / "c", 8, "webdataset", faults=0.5, seed=5, max_side=96)
    train_bpe_tokenizer(["a small picture"] * 10, 280, tmp_path / "tok")
    (tmp_path / "r.yaml").write_text(
        "name: job\nstage: s1\ntokenizer: ${root}/tok\n"
        "sources:\n  - {name: wds, path: '${root}/c/*/*.tar', format: webdataset, category: caption}\n"
        "dedup: {exact: false, near: {enabled: false}}\n"
    )
    out = tmp_path / "out"
    entry = (
        f"{sys.executable} -m mindvl.common.cli data build {tmp_path / 'r.yaml'} "
        f"--out {out} --var root={tmp_path} --progress-every 1"
    )
    deadline = time.monotonic() + 300
    while True:  # the job agent comes up after the dashboard (minutes on a loaded machine)
        try:
            job = ray_head.submit_job(
                entrypoint=entry, runtime_env={"env_vars": {"RAY_AUTH_MODE": "disabled"}}
            )
            break
        except RuntimeError as err:
            if "No available agent" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(2)
    deadline = time.monotonic() + 240
    status = ray_head.get_job_status(job)
    while status not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
        assert time.monotonic() < deadline, "job did not finish in time"
        time.sleep(1)
        status = ray_head.get_job_status(job)
    logs = ray_head.get_job_logs(job)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    assert "[build] wds: input" in logs and "units 4/4" in logs
    kept = pq.read_table(out / "_work" / "kept")
    rejects = pq.read_table(out / "rejects.parquet")
    truth = pq.read_table(tmp_path / "c" / "truth.parquet")
    assert len(kept) + len(rejects) == len(truth)
    assert (out / "manifest.json").is_file()  # mixing ran inside the job too

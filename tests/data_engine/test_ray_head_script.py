"""A data build submitted as a Ray job, the README's way: scripts/ray-head.sh starts a head
of its own, ``ray job submit --working-dir . -- uv run mindvl data build ...`` runs the whole
build inside the job (its Ray work on the head, without VIRTUAL_ENV warnings), and the
script stops the head completely, by its PID, leaving every other Ray on the machine
alone."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mindvl.common.tokenizer_train import train_bpe_tokenizer
from mindvl.data_engine.synth.kit import generate_corpus

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "ray-head.sh"
RECIPE = (
    "name: job\nstage: s1\ntokenizer: ${root}/tok\n"
    "sources:\n  - {name: wds, path: '${root}/c/*/*.tar', format: webdataset, category: caption}\n"
    "dedup: {exact: false, near: {enabled: false}}\n"
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
def test_build_runs_as_a_uv_job_on_its_own_head_which_stops_completely(tmp_path):
    if shutil.which("uv") is None:
        pytest.skip("uv not on PATH")
    generate_corpus(tmp_path / "c", 8, "webdataset", faults=0.5, seed=5, max_side=96)
    train_bpe_tokenizer(["a small picture"] * 10, 280, tmp_path / "tok")
    (tmp_path / "r.yaml").write_text(RECIPE)
    out = tmp_path / "out"
    head = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))  # short: Ray's socket paths
    offset = free_offset()
    try:
        started = subprocess.run(
            [str(SCRIPT), "start", str(head), str(offset)],
            capture_output=True, text=True, timeout=300,
            env={**_env(), "RAY_HEAD_ARGS": "--num-cpus 2"},
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        env_lines = [line.split(" ", 1)[1] for line in started.stdout.splitlines()]
        job_env = dict(kv.split("=", 1) for line in env_lines for kv in line.split())
        assert job_env["RAY_ADDRESS"] == f"http://127.0.0.1:{8265 + offset}"
        job = subprocess.run(
            ["uv", "run", "--no-sync", "ray", "job", "submit", "--working-dir", ".", "--",
             "uv", "run", "mindvl", "data", "build", str(tmp_path / "r.yaml"), "--out", str(out),
             "--var", f"root={tmp_path}", "--progress-every", "1"],
            cwd=ROOT, capture_output=True, text=True, timeout=400, env={**_env(), **job_env},
        )  # fmt: skip
        log = job.stdout + job.stderr
        assert job.returncode == 0, log[-3000:]
        assert "[build] wds: input" in log and "units 4/4" in log
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
    # every sample of the corpus is kept or rejected, and mixing ran inside the job too
    kept = pq.read_table(out / "_work" / "kept")
    rejects = pq.read_table(out / "rejects.parquet")
    assert len(kept) + len(rejects) == len(pq.read_table(tmp_path / "c" / "truth.parquet"))
    assert (out / "manifest.json").is_file()


def free_offset() -> int:
    """A port offset whose four fixed ports (``ray-head.sh``: GCS, client server, dashboard,
    dashboard agent) nothing listens on now: a fixed one collided with another Ray here."""
    for offset in random.Random().sample(range(20, 400), 50):
        ports = (6379 + offset, 10001 - offset, 8265 + offset, 52365 + offset)
        if all(_port_free(p) for p in ports):
            return offset
    pytest.fail("no free port offset for a Ray head")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "VIRTUAL_ENV"))}

"""Nothing a build starts outlives it: SIGKILL of its process group or of its main process
alone leaves no Ray process of that build alive 10 s later; a Ray that fails to start is
one line (exit 2) with nothing left running."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from chaos_helpers import (
    alive,
    build_cmd,
    build_env,
    cmdline,
    descendants,
    make_kit,
    mentioning,
    short_dir,
    wait_for,
)

from mindvl.data_engine.pipeline.ray_session import RayStartError, start_embedded


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    return make_kit(tmp_path_factory.mktemp("kit"))


@pytest.mark.parametrize("how", ["process_group", "main_process"])
def test_killed_build_leaves_no_ray_process(kit, tmp_path, how):
    with short_dir() as ray_root:
        _kill_and_check(kit, tmp_path, ray_root / "r", how)


def _kill_and_check(kit, tmp_path, ray_tmp, how):
    env = build_env()
    if how == "main_process":  # also: Ray's default token auth writes nothing into $HOME
        env.pop("RAY_AUTH_MODE")
        env["HOME"] = str(tmp_path / "home")
    log = tmp_path / "build.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            build_cmd(kit, tmp_path / "out", ray_tmp), env=env, start_new_session=True,
            stdout=sink, stderr=sink,
        )  # fmt: skip
    try:
        # wait until Ray runs workers for the build (started by the raylet, titled ray::)
        wait_for(
            lambda: (
                proc.poll() is not None or any("ray::" in cmdline(p) for p in descendants(proc.pid))
            ),
            240,
        )
        assert proc.poll() is None, log.read_text()[-2000:]
        pids = descendants(proc.pid) | mentioning(str(ray_tmp))
        assert len(pids) >= 4  # gcs, raylet, agents, workers
        if how == "process_group":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(timeout=10)
        assert not (tmp_path / "home" / ".ray").exists()
        assert wait_for(lambda: not [p for p in pids if alive(p)], 10), [
            cmdline(p)[:120] for p in pids if alive(p)
        ]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_ray_start_failure_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    started: list[subprocess.Popen] = []
    for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(k, raising=False)  # the embedded start sets token auth itself

    def half_started_head():
        # a real child that inherited the environment, like a GCS started before the
        # raylet timed out
        started.append(subprocess.Popen(["sleep", "60"]))
        raise RuntimeError(
            "The current node timed out during startup. This could happen because some of "
            "the raylet failed to startup or the GCS has become overloaded.\n  (traceback)"
        )

    with pytest.raises(RayStartError) as err:
        start_embedded(half_started_head)
    line = err.value.format_message()
    assert err.value.exit_code == 2 and "\n" not in line
    assert line.startswith("the embedded Ray did not start (The current node timed out")
    assert "3 attempts" in line
    assert "Free memory or CPU and rerun" in line and "--address" in line
    assert wait_for(lambda: started[0].poll() is not None, 10)
    assert started[0].returncode == -signal.SIGKILL and len(started) == 3
    assert started[1].poll() is not None
    # the failed start took its token auth back: a later Ray here is not half in token mode
    assert "RAY_AUTH_MODE" not in os.environ and "RAY_AUTH_TOKEN" not in os.environ

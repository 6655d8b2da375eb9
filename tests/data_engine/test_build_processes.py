"""A Ray that fails to start is one line (exit 2) with nothing left running; every process
of an embedded Ray carries the guard's token where the guard looks for it, retitled ones
too. (That a SIGKILLed build, by process group or main process alone, leaves no Ray
process alive is checked at the kills of ``test_build_chaos.py``.)"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from chaos_helpers import cmdline, descendants, wait_for

from mindvl.data_engine.pipeline.ray_guard import TOKEN_ENV
from mindvl.data_engine.pipeline.ray_session import AUTH_ENV, RayStartError, start_embedded


def test_retitled_ray_processes_still_show_the_guard_token(ray_local):
    """Ray retitles its agents and workers with setproctitle, which (without SPT_NOENV)
    zeroed what /proc/PID/environ shows of the agents: the guard's sweep then missed the agents, which
    outlived a SIGKILLed build (the chaos test's occasional failure)."""

    def pid() -> int:  # local: pickled by value (a worker cannot import this test module)
        return os.getpid()

    worker = ray_local.get(ray_local.remote(pid).remote())

    def retitled() -> dict[int, str]:
        return {p: cmdline(p) for p in descendants(os.getpid()) if cmdline(p).startswith("ray::")}

    assert wait_for(lambda: worker in retitled(), 30), retitled()
    assert any("Agent" in title for title in retitled().values()), retitled()
    for proc, title in retitled().items():
        try:
            environ = Path(f"/proc/{proc}/environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        assert any(e.startswith(f"{TOKEN_ENV}=".encode()) for e in environ), (proc, title)


def test_ray_start_failure_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    started: list[subprocess.Popen] = []
    for k in AUTH_ENV:
        monkeypatch.delenv(k, raising=False)  # the embedded start sets token auth itself
    # the fake start below starts no Ray, so the clean-up's ray.shutdown() has nothing of
    # its own to stop; it must not stop the folder's shared local Ray (conftest.py)
    monkeypatch.setattr("ray.shutdown", lambda: None)

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

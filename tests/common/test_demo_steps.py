"""A demo step does not outlive the demo, however the demo ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has ended


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_step_dies_with_a_demo_killed_alone_by_sigkill(tmp_path: Path) -> None:
    started = tmp_path / "step.pid"
    sleeper = (
        f"import os, time; open({str(started)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    )
    demo = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from mindvl.common.demo import Steps
        steps = Steps(Path({str(tmp_path / "demo.log")!r}))
        steps.command = lambda args: [sys.executable, "-c", {sleeper!r}]
        steps.run("sleep", [])
    """)])  # fmt: skip
    step = 0
    try:
        deadline = time.time() + 60
        while not (started.exists() and started.read_text()):
            assert demo.poll() is None and time.time() < deadline, "the step did not start"
            time.sleep(0.05)
        step = int(started.read_text())
        assert _alive(step)
        os.kill(demo.pid, signal.SIGKILL)  # the demo alone: its step is not signalled
        demo.wait()
        deadline = time.time() + 10
        while _alive(step):
            assert time.time() < deadline, "the step outlived the demo"
            time.sleep(0.05)
    finally:
        demo.kill()
        if step and _alive(step):
            os.kill(step, signal.SIGKILL)

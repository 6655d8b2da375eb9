"""Nothing an embedded Ray starts outlives the build that started it.

Ray's own fate-sharing covers only some of its processes: agents and workers started by the
raylet (some in process groups of their own) linger after the driver is SIGKILLed. So
every process of an embedded Ray carries a per-build token in its environment
(``MINDVL_RAY_OWNER``, set while ``ray.init`` spawns the head; the raylet passes it on to
the workers and agents it starts), and a small guard process, in a session of its own so a
kill of the build's process group does not reach it, waits for the build's main process to
go and then SIGKILLs every process that carries the token. Run as a script (by path, so
no package import slows its start): ``python ray_guard.py OWNER_PID TOKEN``.

Ray retitles its agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) with
setproctitle, which by default takes the environment's memory for the longer title and
zeroes it: ``/proc/PID/environ`` of a retitled agent no longer showed the token, the guard
could not find the agents, and they outlived a SIGKILLed build (its workers are started
with ``SPT_NOENV`` already). ``SPT_NOENV=1``, set beside the token, keeps setproctitle to
the argument area.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

TOKEN_ENV = "MINDVL_RAY_OWNER"
POLL_S = 0.2


def marks(token: str) -> dict[str, str]:
    """The environment every process of the embedded Ray is started with."""
    return {TOKEN_ENV: token, "SPT_NOENV": "1"}


def holders(token: str) -> list[int]:
    """PIDs (other than this process) whose environment carries ``token``."""
    needle = f"{TOKEN_ENV}={token}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(name))
        except OSError:
            continue  # gone, or not ours
    return found


def sweep(token: str, quiet_rounds: int = 10, max_rounds: int = 150) -> int:
    """SIGKILL every holder of ``token``, scanning again until ``quiet_rounds`` scans in a
    row (2 s) find none: a raylet may still be spawning while it dies, and a process in
    the middle of ``exec`` can show an empty environment for a moment. Returns how many
    processes were signalled."""
    killed: set[int] = set()
    quiet = 0
    for _ in range(max_rounds):
        pids = [p for p in holders(token) if p not in killed or _alive(p)]
        quiet = 0 if pids else quiet + 1
        if quiet >= quiet_rounds:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        time.sleep(POLL_S)
    return len(killed)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def start_guard(token: str) -> subprocess.Popen:
    """The guard of the calling process (its child, in a session of its own)."""
    return subprocess.Popen(
        [sys.executable, "-S", os.path.abspath(__file__), str(os.getpid()), token],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
    )


def _watch(owner: int, token: str) -> None:
    # The guard is the owner's child: once the owner is gone it is re-parented.
    while os.getppid() == owner:
        time.sleep(POLL_S)
    sweep(token)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the terminal is the build's
    _watch(int(sys.argv[1]), sys.argv[2])

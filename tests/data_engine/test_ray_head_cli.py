"""``mindvl data ray-head``: one embedded Ray that a program's builds share (``mindvl demo``
runs its builds on it). A driver connects with what it prints; when the pipe to its stdin
closes (its starter is done, or gone however it went) it stops, and nothing of that Ray is
left. (A SIGKILLed head leaves nothing either: its Ray is started as a build's is, and
``test_build_chaos.py`` kills builds.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from chaos_helpers import assert_gone, descendants, mentioning, short_dir


def test_ray_head_serves_a_driver_and_dies_with_its_pipe():
    with short_dir() as ray_tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH_")}
        head = subprocess.Popen(
            [sys.executable, "-m", "mindvl.common.cli", "data", "ray-head", "--num-cpus", "1",
             "--ray-temp-dir", str(ray_tmp)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )  # fmt: skip
        try:
            info = json.loads(head.stdout.readline())
            assert info["env"]["RAY_AUTH_MODE"] == "token" and info["env"]["RAY_AUTH_TOKEN"]
            driver = subprocess.run(
                [sys.executable, "-c", "import ray, sys; ray.init(address=sys.argv[1]); "
                 "print(ray.cluster_resources()['CPU'])", info["address"]],
                env={**env, **info["env"]}, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert driver.stdout.strip().endswith("1.0"), driver.stderr[-2000:]
            seen = descendants(head.pid) | mentioning(str(ray_tmp))
            assert len(seen) > 3, seen  # the head's GCS, raylet, agents
            head.stdin.close()  # what the starter's exit, however it went, does to the pipe
            assert head.wait(timeout=60) == 0
            assert_gone(seen, within=30)
        finally:
            if head.poll() is None:
                head.kill()
                head.wait()

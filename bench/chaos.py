"""Chaos run: N builds SIGKILLed at seeded random points, each rerun in the same out dir.

One uninterrupted build of a small corpus-kit corpus (with planted faults) is the
reference. Each round then starts the same build into a fresh out dir and kills it, the
kinds of kill in turn, at a point drawn from ``--seed``: after a random delay within the
first half of the reference build's wall time (the whole process group, or the main
process alone), or in the middle of shard writing at a random byte (the test-side SIGKILL
hook, tests/data_engine/crash_hook.py). Ten seconds after the kill it counts the processes
of that build still alive (every descendant seen just before the kill, and anything naming
the build's Ray temp dir), then reruns the build to the end and compares every output
file's sha256 with the reference. Figures go to bench/results/chaos.json.
Usage: nice -n 10 uv run python bench/chaos.py [--rounds 3] [--n 24] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "data_engine"))

from chaos_helpers import (  # noqa: E402
    alive,
    build_cmd,
    build_env,
    descendants,
    make_kit,
    mentioning,
    outputs,
    run_build,
)

MODES = ("process_group", "main_process", "shard_writing")


def _timed_kill(recipe: Path, out: Path, ray_tmp: Path, delay: float, mode: str) -> dict:
    proc = subprocess.Popen(
        build_cmd(recipe, out, ray_tmp), env=build_env(), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    end = time.monotonic() + delay
    seen: set[int] = set()
    while time.monotonic() < end and proc.poll() is None:
        seen |= descendants(proc.pid)
        time.sleep(0.1)
    if proc.poll() is not None:
        return {"killed": False, "exit": proc.returncode, "survivors": 0}
    seen |= descendants(proc.pid) | mentioning(str(ray_tmp))
    if mode == "process_group":
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.kill()
    proc.wait()
    time.sleep(10)
    left = [p for p in seen | mentioning(str(ray_tmp)) if alive(p)]
    for p in left:  # do not leave them to the next round
        os.kill(p, signal.SIGKILL)
    return {"killed": True, "processes_seen": len(seen), "survivors": len(left)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=24, help="samples per kit category")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "chaos.json"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="mvchaos", dir="/tmp"))  # short: Ray's socket paths
    recipe = make_kit(root, args.n)

    t0 = time.monotonic()
    clean = run_build(recipe, root / "clean", root / "ray-clean")
    clean_s = time.monotonic() - t0
    if clean.returncode != 0:
        raise SystemExit(clean.stderr[-3000:])
    reference = outputs(root / "clean")
    shard_bytes = sum(p.stat().st_size for p in (root / "clean").glob("*.tar"))

    rounds = []
    for i in range(args.rounds):
        mode = MODES[i % len(MODES)]  # every kind of kill even in a few rounds
        out = root / f"out-{i}"  # fresh: a finished build would write no shard to kill in
        ray_tmp = root / f"ray-{i}"
        if mode == "shard_writing":
            cut = rng.randrange(1, shard_bytes)
            r = run_build(recipe, out, ray_tmp, crash_after=cut)
            time.sleep(10)
            left = [p for p in mentioning(str(ray_tmp)) if alive(p)]
            row = {
                "killed": r.returncode == -signal.SIGKILL,
                "at_byte": cut,
                "survivors": len(left),
            }
        else:
            # within the first half: a build's own time moves with the machine's load
            delay = round(rng.uniform(0.0, clean_s / 2), 2)
            row = {"at_s": delay, **_timed_kill(recipe, out, ray_tmp, delay, mode)}
        t = time.monotonic()
        rerun = run_build(recipe, out, root / f"ray-{i}-rerun")
        row.update(
            mode=mode,
            rerun_exit=rerun.returncode,
            rerun_s=round(time.monotonic() - t, 1),
            identical=rerun.returncode == 0 and outputs(out) == reference,
        )
        rounds.append(row)
        print(json.dumps(row), flush=True)

    result = {
        "rounds": len(rounds),
        "seed": args.seed,
        "samples": 2 * args.n,
        "clean_build_s": round(clean_s, 1),
        "killed": sum(r["killed"] for r in rounds),
        "identical_after_rerun": sum(r["identical"] for r in rounds),
        "survivors_10s_after_kill": sum(r["survivors"] for r in rounds),
        "per_round": rounds,
        "cpus": os.cpu_count(),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_round"}))


if __name__ == "__main__":
    main()

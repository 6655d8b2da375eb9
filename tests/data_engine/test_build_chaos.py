"""Chaos: a build SIGKILLed while Ray works (its whole process group) and again while it
writes shards (its main process alone), then rerun in the same out dir, ends byte-identical
to a build that was never interrupted (the reference and the rerun run in this process, on
the folder's Ray); after each kill no process of that build's Ray is alive 10 s later
(``ray_guard.py``), and Ray's default token auth wrote nothing into $HOME."""

from __future__ import annotations

import os
import signal
import subprocess

from chaos_helpers import (
    assert_gone,
    build_cmd,
    build_env,
    build_here,
    cmdline,
    make_kit,
    outputs,
    short_dir,
    watch,
)


def test_killed_twice_then_rerun_gives_identical_bytes(ray_local, tmp_path):
    with short_dir() as ray_root:
        _killed_twice_then_rerun(tmp_path, ray_root)


def _start(cmd, log, env=None) -> subprocess.Popen:
    with open(log, "w") as sink:
        return subprocess.Popen(
            cmd, env=env or build_env(), start_new_session=True, stdout=sink, stderr=sink
        )


def _killed_twice_then_rerun(tmp_path, ray_root):
    recipe = make_kit(tmp_path)
    build_here(recipe, tmp_path / "clean")  # the uninterrupted reference, on this folder's Ray
    shards = sorted((tmp_path / "clean").glob("chaos-*.tar"))
    assert len(shards) >= 3

    out = tmp_path / "out"
    # 1: the whole process group, once rows are being staged (Ray's workers at work)
    log = tmp_path / "kill1.log"
    proc = _start(build_cmd(recipe, out, ray_root / "1"), log)
    try:
        seen = watch(
            proc, ray_root / "1", lambda: any((out / "_work" / "parts").rglob("*.parquet")), 300
        )
        assert proc.poll() is None, log.read_text()[-2000:]
        assert len(seen) >= 4 and any("ray::" in cmdline(p) for p in seen)  # gcs, raylet, workers
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert_gone(seen)
    assert not (out / "manifest.json").exists()

    # 2: the main process alone, in the middle of the second shard (crash_hook.py); Ray's
    # default token auth, with a $HOME of its own
    cut = shards[0].stat().st_size + shards[1].stat().st_size // 2
    env = build_env(HOME=str(tmp_path / "home"))
    env.pop("RAY_AUTH_MODE")
    log = tmp_path / "kill2.log"
    proc = _start(build_cmd(recipe, out, ray_root / "2", crash_after=cut), log, env)
    try:
        seen = watch(proc, ray_root / "2", lambda: False, 600)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert len(seen) >= 4
    assert_gone(seen)
    assert not (tmp_path / "home" / ".ray").exists()
    assert [p.name for p in out.glob("chaos-*.tar")] == [shards[0].name]
    assert not (out / "manifest.json").exists()

    # the rerun resumes in this process, on the folder's Ray (what `mindvl data build` runs
    # after its own Ray start: a third start would only repeat the first two)
    rerun = build_here(recipe, out)
    assert any("holds this build already: resuming" in line for line in rerun), rerun
    assert outputs(out) == outputs(tmp_path / "clean")

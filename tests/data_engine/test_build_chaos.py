"""Chaos: a build SIGKILLed while Ray works and again while it writes shards, then rerun
in the same out dir, ends byte-identical to a build that was never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess

from chaos_helpers import build_cmd, build_env, make_kit, outputs, run_build, short_dir, wait_for


def test_killed_twice_then_rerun_gives_identical_bytes(tmp_path):
    with short_dir() as ray_root:
        _killed_twice_then_rerun(tmp_path, ray_root)


def _killed_twice_then_rerun(tmp_path, ray_root):
    recipe = make_kit(tmp_path)
    clean = run_build(recipe, tmp_path / "clean", ray_root / "0")
    assert clean.returncode == 0, clean.stderr[-3000:]
    shards = sorted((tmp_path / "clean").glob("chaos-*.tar"))
    assert len(shards) >= 3

    out = tmp_path / "out"
    # 1: the whole process group, once rows are being staged
    log = tmp_path / "kill1.log"
    with open(log, "w") as sink:
        proc = subprocess.Popen(
            build_cmd(recipe, out, ray_root / "1"), env=build_env(), start_new_session=True,
            stdout=sink, stderr=sink,
        )  # fmt: skip
    try:
        staged = wait_for(
            lambda: proc.poll() is not None or any((out / "_work" / "parts").rglob("*.parquet")),
            300,
        )
        assert staged and proc.poll() is None, log.read_text()[-2000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (out / "manifest.json").exists()

    # 2: the main process alone, in the middle of the second shard
    cut = shards[0].stat().st_size + shards[1].stat().st_size // 2
    crashed = run_build(recipe, out, ray_root / "2", crash_after=cut)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    assert [p.name for p in out.glob("chaos-*.tar")] == [shards[0].name]
    assert not (out / "manifest.json").exists()

    rerun = run_build(recipe, out, ray_root / "3")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "holds this build already: resuming" in rerun.stderr
    assert outputs(out) == outputs(tmp_path / "clean")

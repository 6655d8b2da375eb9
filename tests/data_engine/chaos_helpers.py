"""A tiny build run as a real ``mindvl data build`` subprocess, and its processes by PID."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mindvl.common.tokenizer_train import iter_texts, train_bpe_tokenizer
from mindvl.data_engine.synth.kit import generate_corpus

RECIPE = """\
name: chaos
stage: chaos
seed: 1
tokenizer: {root}/tok
image_tokens: {{min_pixels: 3136, max_pixels: 12544}}
sources:
  - {{name: scenes, path: "{root}/kit/caption", format: webdataset, category: caption, license: synthetic, options: {{prefer: caption}}}}
  - {{name: ocr, path: "{root}/kit/ocr", format: webdataset, category: ocr, license: synthetic, options: {{prefer: caption}}}}
operators:
  - {{op: image_decode, params: {{max_pixels_cap: 64000000}}}}
  - {{op: text_length, params: {{min_chars: 2, max_chars: 2000}}}}
dedup: {{exact: true, near: {{enabled: false}}}}
shards: {{max_samples: 4, max_bytes: 67108864}}
"""


@contextmanager
def short_dir() -> Iterator[Path]:
    """A short folder for Ray temp dirs (Ray's socket paths must fit in 107 bytes, which
    pytest's tmp_path can exceed)."""
    d = Path(tempfile.mkdtemp(prefix="mvray", dir="/tmp"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def make_kit(root: Path, n: int = 24) -> Path:
    """A corpus-kit corpus (with planted faults), its tokenizer and the recipe above."""
    generate_corpus(root / "kit", n, "webdataset", faults=0.2, seed=7, max_side=96)
    train_bpe_tokenizer(iter_texts([root / "kit" / "truth.parquet"]), 300, root / "tok")
    recipe = root / "chaos.yaml"
    recipe.write_text(RECIPE.format(root=root))
    return recipe


def build_cmd(
    recipe: Path, out: Path, ray_tmp: Path, *extra: str, crash_after: int | None = None
) -> list[str]:
    """The build command; ``crash_after``: SIGKILL it once its shard writer has been handed
    that many bytes (``crash_hook.py``)."""
    entry = ["-m", "mindvl.common.cli"]
    if crash_after is not None:
        entry = [str(Path(__file__).with_name("crash_hook.py")), str(crash_after)]
    return [
        sys.executable, *entry, "data", "build", str(recipe),
        "--out", str(out), "--num-cpus", "2", "--ray-temp-dir", str(ray_tmp), *extra,
    ]  # fmt: skip


def build_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("RAY_AUTH_MODE", "disabled")
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def run_build(
    recipe: Path, out: Path, ray_tmp: Path, *extra: str, crash_after: int | None = None, **env: str
):
    return subprocess.run(
        build_cmd(recipe, out, ray_tmp, *extra, crash_after=crash_after), env=build_env(**env),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def build_here(recipe: Path, out: Path) -> list[str]:
    """The same build in this process, on the Ray it is connected to (without a Ray start
    of its own); the lines it printed."""
    from mindvl.common.recipe import load_recipe
    from mindvl.data_engine.pipeline.run import recipe_record, run_build

    text = recipe.read_text(encoding="utf-8")
    spec = load_recipe(recipe, {})
    lines: list[str] = []
    run_build(spec, recipe_record(text, {}), out, source=str(recipe), echo=lines.append)
    return lines


def outputs(build: Path) -> dict[str, str]:
    """sha256 of every visible file of a build dir but report.html, whose timings section
    holds wall-clock seconds (without it the report is byte-stable: test_mix_write_stage)."""
    files = [
        p for p in sorted(build.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.name != "report.html"
    ]  # fmt: skip
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(b")", 1)[1].split()[1])
            out.setdefault(ppid, []).append(int(name))
    return out


def descendants(pid: int) -> set[int]:
    tree, found, todo = children(), set(), [pid]
    while todo:
        for c in tree.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def mentioning(text: str) -> set[int]:
    """Processes whose command line mentions ``text`` (a build's Ray temp dir)."""
    return {int(n) for n in os.listdir("/proc") if n.isdigit() and text in cmdline(int(n))}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def watch(proc: subprocess.Popen, ray_tmp: Path, until, timeout: float) -> set[int]:
    """Poll until ``until()`` holds, ``proc`` ends or ``timeout`` passes; returns every
    process of that build seen meanwhile (its descendants and anything naming its Ray temp
    dir: workers are retitled ``ray::`` and name neither)."""
    seen: set[int] = set()
    end = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < end and not until():
        seen |= descendants(proc.pid) | mentioning(str(ray_tmp))
        time.sleep(0.2)
    return seen | descendants(proc.pid) | mentioning(str(ray_tmp))


def assert_gone(pids: set[int], within: float = 10) -> None:
    """Every one of ``pids`` has exited (or is a zombie) within ``within`` seconds."""
    assert wait_for(lambda: not [p for p in pids if alive(p)], within), [
        f"{p} {cmdline(p)[:40].strip()} {_state(p)}" for p in pids if alive(p)
    ]


def _state(pid: int) -> str:
    """State, parent and process group of a survivor, for the failure message."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return "gone"
    return f"state {fields[0].decode()} ppid {int(fields[1])} pgid {int(fields[2])}"


def wait_for(predicate, timeout: float, step: float = 0.2) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()

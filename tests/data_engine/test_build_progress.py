"""Build progress: per-stage lines from the counts, and a build that loses its progress
actor mid-way (as when Ray's memory monitor kills it) still ends with the same outputs."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from mindvl.common.progress import choose_mode, duration, eta
from mindvl.common.recipe import recipe_from_text
from mindvl.common.tokenizer_train import train_bpe_tokenizer
from mindvl.data_engine.pipeline.progress import ProgressCounts, ProgressReporter, format_lines
from mindvl.data_engine.pipeline.run import recipe_record, run_build


class _Tty:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_mode_is_bars_on_a_terminal_only_and_quiet_wins():
    assert choose_mode(stream=_Tty(True)) == "bars"
    assert choose_mode(stream=_Tty(False)) == "off"  # CI, pipes, Ray job logs
    assert choose_mode(every=5.0, stream=_Tty(False)) == "lines"
    assert choose_mode(quiet=True, every=5.0, stream=_Tty(True)) == "off"
    assert duration(75) == "1:15" and duration(3725) == "1:02:05" and duration(None) == "?"
    assert eta(25, 100, 10.0) == 30.0 and eta(0, 100, 10.0) is None


def test_lines_per_stage_with_counts_rate_and_eta():
    counts = ProgressCounts()
    counts.add("read", {"a": (8, 2), "b": (5, 0)}, 1, "a")
    counts.add("filtered", {"a": (6, 4)}, 0, "")  # read drops pass the filters too
    lines = format_lines(*counts.snapshot(), total_units=4, elapsed=10.0)
    assert lines == [
        "[build] read: 15 samples units 1/4 (kept 13, dropped 2) | 1.5/s | ETA 0:30",
        "[build] filter: 10 samples of 15+ (kept 6, dropped 4) | 1.0/s | ETA ?",
    ]
    counts.add("read", {}, 3, "b")  # every unit read: the later stages get an ETA
    counts.add("filtered", {"b": (5, 0)}, 0, "")
    counts.add("final", {"a": (3, 1), "b": (4, 0)}, 0, "")
    lines = format_lines(*counts.snapshot(), total_units=4, elapsed=10.0)
    assert lines[0].endswith("| done") and "units 4/4" in lines[0]
    assert lines[1].endswith("| done")  # the filters saw all 15 rows read
    # the write stage sees the 11 rows the filters kept
    assert lines[2] == "[build] write: 8 samples of 11 (kept 7, dropped 1) | 0.8/s | ETA 0:04"


def _recipe(root: Path) -> str:
    return (
        f"name: p\nstage: s1\ntokenizer: {root}/tok\nsources:\n"
        f"  - {{name: cap, path: '{root}/wds/caption', format: webdataset, category: caption}}\n"
        f"  - {{name: ocr, path: '{root}/wds/ocr', format: webdataset, category: ocr}}\n"
        "operators:\n  - {op: image_decode}\n  - {op: image_size}\n"
        "dedup: {exact: true, near: {enabled: false}}\n"
        "mixture: {unit: samples, budget: 20, targets: {caption: 0.5, ocr: 0.5}, max_repeat: 3}\n"
    )


def _outputs(out: Path) -> dict[str, str]:
    names = sorted(p.name for p in out.glob("*.tar")) + ["rejects.parquet", "index.parquet"]
    return {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in names}


@pytest.mark.usefixtures("ray_local")
def test_build_survives_losing_its_progress_actor(tmp_path, monkeypatch):
    import ray

    from mindvl.data_engine.pipeline import run as pipeline
    from mindvl.data_engine.pipeline.progress import send
    from mindvl.data_engine.synth.kit import generate_corpus

    generate_corpus(tmp_path / "wds", 40, "webdataset", faults=0.2, seed=5, max_side=96)
    train_bpe_tokenizer(["a red square and a blue circle"] * 20, 300, tmp_path / "tok")
    text = _recipe(tmp_path)
    recipe = recipe_from_text(text)
    run_build(recipe, recipe_record(text, {}), tmp_path / "a", echo=lambda _: None)

    reporters: list[ProgressReporter] = []
    killed: list[object] = []
    start = ProgressReporter.start

    def start_and_record(self) -> None:
        reporters.append(self)
        start(self)

    real = pipeline.dedup_dataset

    def dedup_then_kill(*args, **kwargs):
        """Dedup (whose materialise runs read and filters, reporting to the actor), then
        kill the actor: dedup's output, the staging writes and the mix still lie ahead."""
        out = real(*args, **kwargs)
        actor = reporters[-1].actor
        deadline = time.monotonic() + 60  # the stage tasks' reports are fire and forget
        counts, _ = ray.get(actor.snapshot.remote())
        while not (counts.get("read") and counts.get("filtered")) and time.monotonic() < deadline:
            time.sleep(0.1)
            counts, _ = ray.get(actor.snapshot.remote())
        assert counts.get("read") and counts.get("filtered")  # read and filters reported
        ray.kill(actor, no_restart=True)
        killed.append(actor)
        return out

    monkeypatch.setattr(pipeline, "dedup_dataset", dedup_then_kill)
    monkeypatch.setattr(ProgressReporter, "start", start_and_record)
    lines: list[str] = []
    run_build(
        recipe, recipe_record(text, {}), tmp_path / "b",
        echo=lines.append, progress_interval=0.2, progress_mode="lines",
    )  # fmt: skip
    assert killed, "the progress actor was never killed"
    assert any("progress display stopped" in line and "the build goes on" in line for line in lines)
    assert _outputs(tmp_path / "a") == _outputs(tmp_path / "b")
    send(killed[0], "read", _batch())  # a stage task reporting to the dead actor goes on


def _batch():
    import pyarrow as pa

    return pa.table({"source": ["cap"], "drop_reason": pa.array([None], pa.string())})


@pytest.mark.usefixtures("ray_local")
def test_final_lines_wait_for_counts_still_on_their_way():
    """Stage tasks report fire-and-forget: counts sent just before the dataset ends must
    still reach the final lines (a fast build finished before any poll and showed none)."""
    import threading

    import ray

    actor = ray.remote(num_cpus=0)(ProgressCounts).remote()
    lines: list[str] = []
    reporter = ProgressReporter(actor, {"cap": 2}, interval=60, echo=lines.append)
    reporter.start()

    def late_report() -> None:
        time.sleep(0.5)
        ray.get(actor.add.remote("read", {"cap": (3, 1)}, 2, "cap"))

    sender = threading.Thread(target=late_report)
    sender.start()
    reporter.close()
    sender.join()
    assert any("units 2/2" in line and "kept 3" in line for line in lines), lines

"""End-to-end builds through a real local Ray: funnel invariant, rejects, determinism, memory."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
import threading
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mindvl.common.errors import UserError
from mindvl.common.recipe import recipe_from_text
from mindvl.common.tokenizer_train import train_bpe_tokenizer
from mindvl.data_engine.pipeline.run import (
    prepare,
    recipe_record,
    run_build,
    stream_to_staging,
)

FORMATS = {"caption": "llava", "ocr": "webdataset", "grounding": "parquet", "chart": "folder"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One kit corpus per format; each recipe source reads one category of one format."""
    from mindvl.data_engine.synth.kit import generate_corpus

    root = tmp_path_factory.mktemp("corpus")
    for fmt in sorted(set(FORMATS.values())):
        generate_corpus(root / fmt, 24, fmt, faults=0.3, seed=3, max_side=128)
    train_bpe_tokenizer(["a picture of a red square and a blue circle"] * 20, 300, root / "tok")
    return root


def kit_recipe(root: Path, dedup: bool = False) -> str:
    sources = "\n".join(
        f"  - {{name: {cat}_{fmt}, path: '{root}/{fmt}/{cat}', format: {fmt}, category: {cat}}}"
        for cat, fmt in FORMATS.items()
    )
    dd = "" if dedup else "dedup: {exact: false, near: {enabled: false}}\n"
    ops = "\n".join(f"  - {{op: {op}}}" for op in ("image_decode", "image_size") if _has_op(op))
    return (
        f"name: e2e\nstage: s1\ntokenizer: {root}/tok\nsources:\n{sources}\n"
        f"operators:{' []' if not ops else chr(10) + ops}\n{dd}"
    )


def _has_op(name: str) -> bool:
    from mindvl.data_engine.ops.registry import OPERATORS

    return name in OPERATORS


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.parquet")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_build_funnel_invariant_rejects_and_determinism(ray_local, corpus, tmp_path):
    text = kit_recipe(corpus)
    recipe = recipe_from_text(text)
    lines: list[str] = []
    result = run_build(recipe, recipe_record(text, {}), tmp_path / "out", echo=lines.append)
    truth = Counter()
    for fmt in set(FORMATS.values()):
        t = pq.read_table(corpus / fmt / "truth.parquet")
        truth.update(
            f"{c}_{fmt}"
            for c, f in zip(t["category"].to_pylist(), t["format"].to_pylist(), strict=True)
            if FORMATS[c] == f
        )
    acc = result.accounting
    assert {s.source: s.input for s in acc.sources} == dict(truth)
    for s in acc.sources:
        drops = sum(e.count for e in acc.funnel if e.source == s.source)
        assert s.input == s.kept + drops and s.dropped == drops
    assert any(e.stage == "read" for e in acc.funnel)  # the kit plants missing/non-UTF-8 faults

    work = tmp_path / "out" / "_work"
    kept = pq.read_table(work / "kept")
    rejects = pq.read_table(tmp_path / "out" / "rejects.parquet")
    assert rejects.column_names == [
        "key",
        "source",
        "stage",
        "op",
        "reason",
        "dup_group",
        "dup_survivor",
    ]
    assert len(rejects) == sum(e.count for e in acc.funnel)
    assert rejects["key"].to_pylist() == sorted(rejects["key"].to_pylist())
    assert not set(kept["key"].to_pylist()) & set(rejects["key"].to_pylist())
    assert len(kept) == sum(s.kept for s in acc.sources)
    assert not (work / "parts").exists()
    assert any("units" in line and "kept" in line for line in lines)  # live progress lines
    # dedup stays off here: its distributed stages take minutes on a loaded 2-core machine;
    # bench/data_engine.py and the dedup tests run it
    if result.stages.get("dedup") == "ran":  # dedup drops name their group in rejects
        groups = [
            g
            for st, g in zip(
                rejects["stage"].to_pylist(), rejects["dup_group"].to_pylist(), strict=True
            )
            if st == "dedup"
        ]
        assert groups and all(g is not None for g in groups)

    before = (_digest(work / "kept"), (tmp_path / "out" / "rejects.parquet").read_bytes())
    run_build(recipe, recipe_record(text, {}), tmp_path / "out", echo=lines.append)
    after = (_digest(work / "kept"), (tmp_path / "out" / "rejects.parquet").read_bytes())
    assert before == after


def test_bad_recipe_and_missing_source_fail_before_work(corpus, tmp_path):
    text = kit_recipe(corpus).replace(f"{corpus}/parquet/grounding", f"{corpus}/nope")
    with pytest.raises(UserError, match="path not found"):
        prepare(recipe_from_text(text), "r.yaml")
    text = f"name: x\nstage: s\ntokenizer: {corpus}/tok\nsources: [{{name: a, path: '{corpus}/llava', format: llava, category: c}}]\noperators: [{{op: no_such_op}}]\n"
    with pytest.raises(UserError, match="operators\\[0\\].op: unknown operator"):
        prepare(recipe_from_text(text), "r.yaml")


def _fake_tars(root: Path, n_tars: int, per_tar: int = 12, size: int = 512 << 10) -> Path:
    """Tars of incompressible 'JPEG' payloads: reading them is all the build does."""
    root.mkdir(parents=True)
    rnd = io.BytesIO(os.urandom(size + per_tar * n_tars))
    for t in range(n_tars):
        with tarfile.open(root / f"shard-{t:05d}.tar", "w") as tf:
            for i in range(per_tar):
                rnd.seek(t * per_tar + i)
                for name, data in (
                    (f"s{t}_{i}.jpg", b"\xff\xd8\xff" + rnd.read(size)),
                    (f"s{t}_{i}.txt", b"x"),
                ):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    return root


def _peak_memory_during(fn) -> tuple[int, int]:
    """(largest RSS of any one process of this build, peak object-store bytes) while fn runs.

    Per process, not summed: Ray starts and retires helper processes between runs, which
    would swamp a sum; a build that collected its data anywhere (driver, a worker, the
    object store) shows up in one of the two numbers.
    """
    import psutil
    import ray
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    state = get_state_from_address(ray.get_runtime_context().gcs_address)
    me = psutil.Process()
    stop = threading.Event()
    peak = [0, 0]

    def sample() -> None:
        while not stop.is_set():
            for p in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    peak[0] = max(peak[0], p.memory_info().rss)
            used = get_memory_info_reply(state).store_stats.object_store_bytes_used
            peak[1] = max(peak[1], used)
            stop.wait(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        fn()
    finally:
        stop.set()
        th.join()
    return peak[0], peak[1]


def test_streaming_memory_does_not_grow_with_corpus(ray_local, corpus, tmp_path):
    peaks = {}
    for n_tars in (2, 3, 15):  # a warm-up run, then ~18 MiB vs ~90 MiB of image bytes
        src = _fake_tars(tmp_path / f"c{n_tars}", n_tars)
        text = (
            f"name: mem\nstage: s1\ntokenizer: {corpus}/tok\nsources:\n"
            f"  - {{name: fake, path: '{src}', format: webdataset, category: caption}}\n"
            "dedup: {exact: false, near: {enabled: false}}\n"
        )
        recipe = recipe_from_text(text)
        plan = prepare(recipe, "mem")
        work = tmp_path / f"out{n_tars}" / "_work"
        run = lambda r=recipe, p=plan, w=work: stream_to_staging(r, p, w, {}, echo=lambda _: None)  # noqa: E731
        peaks[n_tars] = _peak_memory_during(run)
        staged = sum(len(pq.read_table(f)) for f in (work / "parts" / "kept").rglob("*.parquet"))
        assert staged == n_tars * 12
    rss, store = (peaks[15][i] - peaks[3][i] for i in range(2))
    assert rss < 24 << 20, f"largest process RSS grew by {rss >> 20} MiB for 72 MiB more input"
    assert store < 12 << 20, f"object store peak grew by {store >> 20} MiB for 72 MiB more input"


def test_cli_fails_in_one_line_before_any_work(corpus, tmp_path):
    import subprocess
    import sys

    recipe = tmp_path / "r.yaml"
    recipe.write_text(kit_recipe(corpus).replace(f"{corpus}/folder/chart", "${root}/missing"))
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "mindvl.common.cli",
        "data",
        "build",
        str(recipe),
        "--out",
        str(out),
    ]
    proc = subprocess.run([*cmd, "--var", f"root={corpus}"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: source chart_folder: path not found: {corpus}/missing"
    ]
    assert not out.exists()  # nothing was started or written


def test_each_unit_is_read_and_filtered_in_a_task_of_its_own(ray_local, corpus, tmp_path):
    """Ray fuses read -> operators -> staging into one task and bundles max(batch sizes)
    input rows per task: an operator stage with a fixed batch size once put every unit of
    a build into one task (one busy CPU). Each unit must get its own task."""
    import re

    src = _fake_tars(tmp_path / "c6", 6)
    text = (
        f"name: tasks\nstage: s1\ntokenizer: {corpus}/tok\nsources:\n"
        f"  - {{name: fake, path: '{src}', format: webdataset, category: caption}}\n"
        "operators:\n  - {op: image_decode}\n  - {op: image_size}\n"
        "dedup: {exact: false, near: {enabled: false}}\n"
    )
    recipe = recipe_from_text(text)
    plan = prepare(recipe, "tasks")
    assert len(plan.units) == 6
    summaries: list[str] = []
    stream_to_staging(
        recipe, plan, tmp_path / "w", {}, echo=lambda _: None, on_stats=summaries.append
    )
    fused = [
        line
        for line in summaries[0].splitlines()
        if line.startswith("Operator") and "read_stage" in line and "apply_operators" in line
    ]
    assert len(fused) == 1, summaries[0][:2000]
    assert int(re.search(r": (\d+) tasks executed", fused[0]).group(1)) == 6, fused[0]

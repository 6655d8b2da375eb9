"""The whole recipe once, end to end, at smoke size: `mindvl demo --size small`, run once
for this module.

Real components throughout: the corpus kit, four data builds on the demo's one embedded
Ray (`mindvl data ray-head`), the trainer's three stages with averaging, recaptioning by
the demo's own warm-up model, resolution search, evaluation and the report. (The
full-size demo's claim — beating the majority baseline — is asserted by the opt-in
`test_demo_learns.py`.)

The demo's warm-up build (the shipped warm-up recipe: filters, exact + near dedup and
decontamination on, a corpus with planted faults) also serves the determinism check: rebuilt
from what its manifest records, on one CPU instead of all of them, it must give the same
bytes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from demo_helpers import run_demo

sys.path.insert(0, str(Path(__file__).parents[1] / "data_engine"))
from chaos_helpers import outputs  # noqa: E402

from mindvl.common.manifest import RatioManifest, verify_shards  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo"
    run_demo(out, "--size", "small", timeout=900)
    return out


def test_demo_small_runs_every_stage(demo):
    out = demo
    for stage in ("heldout", "warmup", "multitask", "sft"):
        build = out / "builds" / stage
        manifest = RatioManifest.load(build)
        assert verify_shards(manifest, build) == []
        index = pq.read_table(build / "index.parquet")
        assert index.num_rows == manifest.total_samples > 0
        # every input sample is accounted for: kept in shards or dropped with a reason
        for src in manifest.sources:
            assert src.input == src.kept + src.dropped
        # ... and every sample not in a shard has a row in rejects.parquet saying why
        rejects = pq.read_table(build / "rejects.parquet")
        assert len(rejects) == sum(src.dropped for src in manifest.sources)
        assert not set(rejects.column("key").to_pylist()) & set(index.column("key").to_pylist())
    sft = RatioManifest.load(out / "builds" / "sft")
    assert "text" in {c.category for c in sft.mixture.categories if c.samples > 0}
    # the multitask build was recaptioned by the warm-up model (provenance in its samples)
    prov = pq.read_table(out / "builds" / "multitask" / "index.parquet").column(
        "caption_provenance"
    )
    assert any(p for p in prov.to_pylist()), "no caption provenance in the multitask build"
    # averaging recorded both multitask runs; the SFT model descends from the average
    avg = json.loads((out / "runs" / "multitask_avg" / "provenance.json").read_text())
    assert len(avg["averaged_from"]) == 2
    sft_prov = json.loads((out / "runs" / "sft" / "model" / "provenance.json").read_text())
    assert avg["id"] in sft_prov["ancestors"]
    # resolution search wrote its choice into the final checkpoint, or, when no setting
    # beats the majority baseline (a smoke-size model usually does not), chose nothing and
    # left the checkpoint's rule as it was
    inference = json.loads((out / "runs" / "sft" / "model" / "inference.json").read_text())
    report = json.loads((out / "eval_report.json").read_text())
    search = report["resolution_search"]
    if search["chosen"] is None:
        assert "no setting beats the majority-answer baseline" in search["note"]
        assert search["previous"] == inference["image_tokens"]
    else:
        assert search["chosen"]["max_pixels"] == inference["image_tokens"]["max_pixels"]
    assert len(report["settings"]) == 3
    md = (out / "report.md").read_text()
    assert "majority" in md.lower() and (out / "report.html").read_text().count("<svg") >= 3


def test_build_is_byte_identical_across_parallelism(demo, tmp_path):
    """Same recipe + same inputs => byte-identical shards, manifest, index and rejects,
    whatever the Ray parallelism: the demo built its warm-up stage on an embedded Ray with
    every CPU of the machine; here it is rebuilt on one."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("the demo's build ran on one CPU: nothing to compare one CPU against")
    built = demo / "builds" / "warmup"
    record = RatioManifest.load(built).recipe
    assert {"corpus", "heldout", "tokenizer", "budget"} <= set(record.variables)
    recipe = tmp_path / "warmup.yaml"
    recipe.write_text(record.text, encoding="utf-8")
    out = tmp_path / "build1"
    variables = [a for k, v in sorted(record.variables.items()) for a in ("--var", f"{k}={v}")]
    proc = subprocess.run(
        [sys.executable, "-m", "mindvl.common.cli", "data", "build", str(recipe), "--out", str(out),
         "--num-cpus", "1", *variables],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, every = outputs(out), outputs(built)
    assert any(name.endswith(".tar") for name in one)
    assert {"manifest.json", "index.parquet", "rejects.parquet"} <= set(one)
    assert one == every

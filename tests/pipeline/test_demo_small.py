"""The whole recipe once, end to end, at smoke size: `mindvl demo --size small`.

Real components throughout: the corpus kit, four data builds on an embedded Ray, the
trainer's three stages with averaging, recaptioning by the demo's own warm-up model,
resolution search, evaluation and the report. (The full-size demo's claim — beating the
majority baseline — is asserted by the opt-in `test_demo_learns.py`.)
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from demo_helpers import run_demo

from mindvl.common.manifest import RatioManifest, verify_shards


def test_demo_small_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    run_demo(out, "--size", "small", timeout=900)
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

"""``mindvl manifest diff``: mixture, recipe, funnel, sample and shard deltas; tolerances."""

from __future__ import annotations

import json
import re
import shutil

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from mixkit_helpers import make_candidates, make_recipe, make_tokenizer, write_staging

from mindvl.common.cli import cli
from mindvl.common.manifest import FunnelEntry
from mindvl.data_engine.accounting import BuildAccounting
from mindvl.data_engine.mix import write_stage

COUNTS = {("a", "caption"): 30, ("c", "ocr"): 25, ("d", "chart"): 20}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("diff")
    tok = make_tokenizer(root / "tok")
    cands = make_candidates(COUNTS)

    def one(name, sources, targets, min_side, drops):
        names = {s for s, _ in sources}
        staging = write_staging(root / f"st{name}", [c for c in cands if c.source in names])
        recipe, record = make_recipe(
            tok,
            sources,
            {"budget": 40, "targets": targets},
            shards={"max_samples": 10},
            operators=[
                {"op": "image_size", "params": {"min_side": min_side}},
                {"op": "text_length"},
            ],
        )
        acc = BuildAccounting(
            funnel=[
                FunnelEntry(
                    source="a", stage="filter", op="image_size", reason="too_small", count=drops
                )
            ]
        )
        write_stage(staging, recipe, record, root / name, acc)
        return root / name

    a = one("A", [("a", "caption"), ("c", "ocr")], {"caption": 0.5, "ocr": 0.5}, 32, 3)
    a2 = one("A2", [("a", "caption"), ("c", "ocr")], {"caption": 0.5, "ocr": 0.5}, 32, 3)
    b = one(
        "B",
        [("a", "caption"), ("c", "ocr"), ("d", "chart")],
        {"caption": 0.5, "ocr": 0.3, "chart": 0.2},
        64,
        7,
    )
    return a, a2, b


def run(*args):
    return CliRunner().invoke(cli, ["manifest", "diff", *map(str, args)])


def test_identical_builds_diff_clean_even_with_zero_tolerance(builds):
    a, a2, _ = builds
    r = run(a, a2, "--fail-on", "ratio=0,samples=0,tokens=0,funnel=0,keys=0")
    assert r.exit_code == 0, r.output
    assert "identical selection" in r.output and "Recipe changes" not in r.output


def test_json_diff_reports_every_section(builds):
    a, _, b = builds
    r = run(a, b, "--json", "--list")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    cats = {c["category"]: c for c in d["categories"]}
    assert cats["ocr"]["samples_a"] == 20 and cats["ocr"]["samples_b"] == 12
    assert cats["ocr"]["ratio_samples_delta"] == pytest.approx(-0.2)
    assert cats["chart"]["samples_a"] == 0 and cats["chart"]["samples_b"] == 8
    assert d["sources"] == {"added": ["d"], "removed": []}
    changes = {c["path"]: (c["a"], c["b"]) for c in d["recipe"]}
    assert changes["operators.image_size.params.min_side"] == (32, 64)
    assert changes["mixture.targets.ocr"] == (0.5, 0.3)
    assert changes["sources.d.category"] == (None, "chart")
    assert "operators.text_length.op" not in changes
    funnel = {(f["source"], f["stage"], f["op"]): f["delta"] for f in d["funnel"]}
    assert funnel[("a", "filter", "image_size")] == 4
    # Sample deltas agree with a direct comparison of the two indexes.
    ka = set(pq.read_table(a / "index.parquet").column("key").to_pylist())
    kb = set(pq.read_table(b / "index.parquet").column("key").to_pylist())
    s = d["samples"]
    assert (s["added"], s["removed"]) == (len(kb - ka), len(ka - kb))
    assert s["added_keys"] == sorted(kb - ka) and s["removed_keys"] == sorted(ka - kb)
    per = {p["source"]: p for p in s["per_source"]}
    assert per["d"]["added"] == 8 and per["c"]["removed"] == 8
    assert d["shards"]["changed"] and d["violations"] == []


def test_text_and_markdown_outputs(builds):
    a, _, b = builds
    r = run(a, b)
    assert r.exit_code == 0
    assert re.search(r"operators.image_size.params.min_side +32 +64\n", r.output)
    assert "Samples added/removed" in r.output and "selection differs" in r.output
    m = run(a, b, "--markdown")
    assert m.exit_code == 0 and "| category | target A |" in m.output
    assert "| operators.image_size.params.min_side | 32 | 64 |" in m.output


def test_fail_on_tolerances(builds, tmp_path):
    a, _, b = builds
    r = run(a, b, "--fail-on", "ratio=0.01")
    assert r.exit_code == 1 and "DRIFT ratio of ocr moved by -0.2000" in r.output
    assert run(a, b, "--fail-on", "ratio=0.25").exit_code == 0
    r = run(a, b, "--fail-on", "samples=5", "--fail-on", "funnel=15")
    assert r.exit_code == 1 and "samples of chart moved by +8" in r.output
    assert "funnel" not in r.output.split("DRIFT", 1)[1]
    assert run(a, b, "--fail-on", "funnel=3").exit_code == 1
    assert run(a, b, "--fail-on", "keys=1000").exit_code == 0
    (tmp_path / "manifest.json").write_bytes((a / "manifest.json").read_bytes())
    no_index = run(tmp_path, b, "--fail-on", "keys=0")
    assert no_index.exit_code == 1 and "index.parquet missing" in no_index.output
    bad = run(a, b, "--fail-on", "speed=1")
    assert bad.exit_code == 2 and "KIND=VALUE" in bad.output


def test_manifest_diff_flags_differing_code(builds, tmp_path):
    a, a2, _ = builds
    other = tmp_path / "other"
    shutil.copytree(a2, other)
    data = json.loads((other / "manifest.json").read_text())
    assert "+src." in data["code_version"]
    data["code_version"] = "0.1.0+src.0000000000000000"
    (other / "manifest.json").write_text(json.dumps(data))
    r = run(a, other)
    assert r.exit_code == 0, r.output
    assert "code version differs" in r.output and "0.1.0+src.0000000000000000" in r.output
    assert json.loads(run(a, other, "--json").output)["code_same"] is False
    assert "code version differs" not in run(a, a2).output

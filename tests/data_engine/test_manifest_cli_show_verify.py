"""``mindvl manifest show`` and ``verify`` on a real build."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from mixkit_helpers import make_candidates, make_recipe, make_tokenizer, write_staging

from mindvl.common.cli import cli
from mindvl.data_engine.accounting import BuildAccounting
from mindvl.data_engine.mix import write_stage


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    root = tmp_path_factory.mktemp("show")
    tok = make_tokenizer(root / "tok")
    staging = write_staging(root / "st", make_candidates({("a", "caption"): 20, ("c", "ocr"): 15}))
    recipe, record = make_recipe(
        tok,
        [("a", "caption"), ("c", "ocr")],
        {"budget": 30, "targets": {"caption": 0.5, "ocr": 0.5}},
        shards={"max_samples": 8},
    )
    m = write_stage(staging, recipe, record, root / "out", BuildAccounting())
    return m, root / "out"


def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_show_prints_mixture_funnel_and_shards(build):
    m, out = build
    for target in (out, out / "manifest.json"):
        r = run("manifest", "show", str(target))
        assert r.exit_code == 0, r.output
        assert "mixtest / stage s1" in r.output
        assert "30 samples" in r.output and "4 shards" in r.output
        assert "caption   0.5000  0.5000" in r.output
        assert "not_selected" in r.output and "s1-000003.tar" in r.output
    # --markdown: the build summary report.html renders, as Markdown
    r = run("manifest", "show", str(out), "--markdown")
    assert r.exit_code == 0, r.output
    assert r.output.startswith("# mixtest / s1\n") and "## Funnel by stage" in r.output
    assert "| source | input | after read | after filters | after dedup | in shards |" in r.output
    # 15 of the 20 captions fill their half of the 30-sample budget; 5 are not selected
    assert (
        "| a | 20 | 20 | 20 | 20 | 15 |" in r.output
        and "| c | 15 | 15 | 15 | 15 | 15 |" in r.output
    )
    assert "### caption" in r.output and "| sample | text |" in r.output
    assert "Timings: n/a" in r.output and "*Chart: " in r.output


def test_verify_ok_then_names_mismatched_missing_and_extra_shards(build, tmp_path):
    m, out = build
    r = run("manifest", "verify", str(out))
    assert r.exit_code == 0 and "ok: 4 shards, 30 samples" in r.output
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in out.iterdir():
        if p.is_file():
            (copy / p.name).write_bytes(p.read_bytes())
    data = bytearray((copy / "s1-000001.tar").read_bytes())
    data[600] ^= 1
    (copy / "s1-000001.tar").write_bytes(bytes(data))
    (copy / "s1-000002.tar").unlink()
    (copy / "s1-000004.tar").write_bytes(b"x")
    r = run("manifest", "verify", str(copy))
    assert r.exit_code == 1
    assert "mismatched shard s1-000001.tar" in r.output
    assert "missing shard s1-000002.tar" in r.output
    assert "extra shard s1-000004.tar" in r.output
    assert "s1-000000.tar" not in r.output


def test_missing_manifest_is_a_one_line_user_error(tmp_path):
    r = run("manifest", "show", str(tmp_path))
    assert r.exit_code == 2 and "manifest not found" in r.output

"""Hostile input through a real build on a real local Ray: repeated ids, control
characters, decomposed Unicode, empty answers and links end as counted drops or cleaned
text, never a crash; a dir holding another build is refused; ``manifest verify`` sees any
unlisted tar."""

from __future__ import annotations

import json
import shutil
import tarfile
import unicodedata

import pyarrow.parquet as pq
import pytest
from chaos_helpers import run_build as build_subprocess
from click.testing import CliRunner
from hostile_corpus import make_hostile

from mindvl.common.cli import cli
from mindvl.common.recipe import recipe_from_text
from mindvl.common.tokenizer_train import train_bpe_tokenizer
from mindvl.data_engine.pipeline.run import claim_build_dir, prepare, recipe_record, run_build


@pytest.fixture(scope="module")
def built(tmp_path_factory, ray_local):
    """The hostile corpus built as ``mindvl data build`` builds it (claim the out dir, then
    run), on the folder's local Ray (the CLI's own Ray start is the chaos test's)."""
    root = tmp_path_factory.mktemp("hostile")
    train_bpe_tokenizer(
        ["a red square on white", "a purple hexagon on grass"] * 20, 300, root / "tok"
    )
    recipe = make_hostile(root, root / "tok")
    text = recipe.read_text()
    spec, record = recipe_from_text(text), recipe_record(text, {})
    plan = prepare(spec, str(recipe))
    claim_build_dir(root / "out", record)
    run_build(spec, record, root / "out", source=str(recipe), plan=plan, echo=lambda _: None)
    return root, recipe


def _funnel(out):
    m = json.loads((out / "manifest.json").read_text())
    return {(f["source"], f["op"], f["reason"]): f["count"] for f in m["funnel"]}, m


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [s for v in value for s in _strings(v)] if isinstance(value, list) else []


def _texts(out) -> dict[str, str]:
    """Every string of every sample record in the shards, joined, by member name."""
    texts = {}
    for shard in sorted(out.glob("*.tar")):
        with tarfile.open(shard) as tf:
            for m in tf.getmembers():
                if m.name.endswith(".json"):
                    texts[m.name] = "\n".join(_strings(json.loads(tf.extractfile(m).read())))
    return texts


def test_hostile_corpus_is_counted_and_cleaned(built):
    root, _ = built
    out = root / "out"
    funnel, manifest = _funnel(out)
    assert funnel[("lv", "llava", "duplicate_key")] == 1
    assert funnel[("wd", "webdataset", "duplicate_key")] == 3  # the copied shard
    assert funnel[("pq", "parquet", "duplicate_key")] == 1
    for src, fmt in (("lv", "llava"), ("wd", "webdataset"), ("pq", "parquet"), ("fd", "folder")):
        assert funnel[(src, fmt, "empty_answer")] == 1
    assert funnel[("pq", "parquet", "control_characters")] == 1  # options.control_chars: drop
    assert funnel[("fd", "folder", "skipped_link")] == 2  # a linked subfolder, a dangling link
    for s in manifest["sources"]:
        assert s["input"] == s["kept"] + s["dropped"]

    texts = _texts(out)
    assert len(texts) == sum(s["kept"] for s in manifest["sources"]) == 4 + 2 + 1 + 2
    joined = "".join(texts.values())
    assert all(
        not (ord(ch) < 32 and ch not in "\t\n") and not 0x7F <= ord(ch) <= 0x9F for ch in joined
    )
    assert "a red square on white" in joined  # cleaned, kept (default control_chars: remove)
    assert "caf\u00e9 sign" in joined and unicodedata.is_normalized("NFC", joined)
    assert "the first of two" in joined and "the second of two" not in joined
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    assert sum(r["reason"] == "duplicate_key" for r in rejects) == 5
    assert CliRunner().invoke(cli, ["manifest", "verify", str(out)]).exit_code == 0


def test_another_build_is_refused_and_foreign_tars_fail_verify(built, tmp_path):
    root, recipe = built
    out = root / "out"
    other = tmp_path / "other.yaml"
    other.write_text(recipe.read_text().replace("seed: 1", "seed: 2"))
    proc = build_subprocess(other, out, tmp_path / "r")  # refused before Ray starts
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds another build (recipe digest" in lines[0]
    assert "--overwrite" in lines[0]

    verify = out.parent / "verify-copy"
    shutil.copytree(out, verify)
    shutil.copyfile(next(verify.glob("hostile-*.tar")), verify / "stray.tar")
    res = CliRunner().invoke(cli, ["manifest", "verify", str(verify)])
    assert res.exit_code != 0 and "extra shard stray.tar" in res.output

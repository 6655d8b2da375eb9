"""An out dir belongs to one build: same build resumes, another is refused or overwritten."""

from __future__ import annotations

import json

import pytest

from mindvl.common.errors import UserError
from mindvl.common.manifest import RecipeRecord
from mindvl.data_engine.pipeline.out_dir import CLAIM_NAME, claim_out_dir, identity

A = identity(RecipeRecord(text="a", digest="d-a", variables={"x": "1"}), "v1")
B = identity(RecipeRecord(text="b", digest="d-b", variables={"x": "1"}), "v1")


def test_claim_resume_refuse_overwrite(tmp_path):
    out = tmp_path / "out"
    assert claim_out_dir(out, A) == "new"
    assert claim_out_dir(out, A) == "new"  # only the claim: nothing to resume yet
    (out / "s-000000.tar").write_bytes(b"x")
    (out / "_work").mkdir()
    (out / "notes.txt").write_text("mine")
    assert claim_out_dir(out, A) == "resume"
    assert claim_out_dir(out, dict(A, code_version="v1")) == "resume"

    with pytest.raises(UserError, match=r"holds another build \(recipe digest 'd-a' vs 'd-b'\)"):
        claim_out_dir(out, B)
    with pytest.raises(UserError, match=r"another build \(code version 'v1' vs 'v2'\)"):
        claim_out_dir(out, dict(A, code_version="v2"))
    assert (out / "s-000000.tar").exists()

    # Code versions compare by the engine's source digest: git describe may differ.
    src = dict(A, code_version="0.1.0+src.abc.git.b324c65")
    assert claim_out_dir(out, src, overwrite=True) == "overwrite"
    (out / "s-000000.tar").write_bytes(b"x")
    assert claim_out_dir(out, dict(A, code_version="0.1.0+src.abc")) == "resume"
    assert claim_out_dir(out, dict(A, code_version="0.1.0+src.abc.git.0effcc9-dirty")) == "resume"
    with pytest.raises(UserError, match=r"code version '0.1.0\+src.abc.git.0effcc9-dirty' vs"):
        claim_out_dir(out, dict(A, code_version="0.1.0+src.def.git.0effcc9-dirty"))

    assert claim_out_dir(out, B, overwrite=True) == "overwrite"
    assert sorted(p.name for p in out.iterdir()) == [CLAIM_NAME, "notes.txt"]
    assert json.loads((out / CLAIM_NAME).read_text())["recipe_digest"] == "d-b"


def test_unclaimed_build_files_are_refused_or_adopted_from_the_manifest(tmp_path):
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "other-000001.tar").write_bytes(b"x")
    with pytest.raises(UserError, match="files of a build this mindvl cannot identify"):
        claim_out_dir(stray, A)

    old = tmp_path / "old"
    old.mkdir()
    recipe = {"text": "a", "digest": "d-a", "variables": {"x": "1"}}
    (old / "manifest.json").write_text(json.dumps({"recipe": recipe, "code_version": "v1"}))
    assert claim_out_dir(old, A) == "resume"

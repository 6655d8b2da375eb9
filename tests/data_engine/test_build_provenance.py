"""A build's provenance: the code version survives a run without ``.git`` (a Ray job's
working dir) and the recipe digest covers the ``--var`` values. ``manifest diff`` flagging
differing code is tested in test_manifest_cli_diff.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import mindvl.common
import mindvl.data_engine
from mindvl.common.recipe import resolved_digest
from mindvl.data_engine.mix.provenance import code_version, same_code, source_digest

RECIPE = "name: r\nbudget: ${budget}  # a comment\nsources: [{path: '${corpus}/a'}]\n"


def test_recipe_digest_covers_variables_not_comments():
    one = resolved_digest(RECIPE, {"budget": "60000", "corpus": "/c"})
    assert one == resolved_digest(
        RECIPE.replace("# a comment", ""), {"corpus": "/c", "budget": "60000"}
    )
    assert one != resolved_digest(RECIPE, {"budget": "30000", "corpus": "/c"})
    assert one != resolved_digest(RECIPE, {"budget": "60000", "corpus": "/d"})


def test_code_version_without_git_carries_the_same_source_digest(tmp_path):
    # the build code copied where no .git is above it, as `ray job submit --working-dir` does
    root = tmp_path / "job" / "mindvl"
    for pkg in (mindvl.common, mindvl.data_engine):
        src = Path(pkg.__file__).parent
        shutil.copytree(src, root / src.name, ignore=shutil.ignore_patterns("__pycache__"))
    probe = (
        "from mindvl.data_engine.mix import provenance as p; print(p.__file__, p.code_version())"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path / "job"),
        "GIT_CEILING_DIRECTORIES": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0].startswith(str(tmp_path))  # the copy ran, not the checkout
    assert out[1].endswith(f"+src.{source_digest()[:16]}") and ".git." not in out[1]
    assert same_code(out[1], code_version())
    with open(root / "data_engine" / "record.py", "a", encoding="utf-8") as f:
        f.write("# a changed line\n")
    changed = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert not same_code(changed, code_version())

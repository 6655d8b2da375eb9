"""Which build an out dir belongs to, so a build never mixes with another's files.

A build claims its out dir before any work: ``.mindvl-build.json`` records the recipe
digest, the variables and the code version (compared by the engine's source digest,
``mix.provenance.same_code``, so a commit that changes only docs, or the same code run as
a Ray job without ``.git``, is the same build). A rerun of the same build finds the same
record and resumes (staging is redone, finished shards are reused). A dir that holds
another build (another record, or build files without one: shards, a manifest, staging)
is refused in one line, unless ``overwrite``, which removes that build's files first
(anything else in the dir is left alone). A dir written by a mindvl without the record
but holding a manifest of this very build is adopted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mindvl.common.errors import UserError
from mindvl.common.manifest import INDEX_NAME, MANIFEST_NAME, REJECTS_NAME, RecipeRecord
from mindvl.data_engine.mix.provenance import same_code

CLAIM_NAME = ".mindvl-build.json"
# Files a build writes at the top of its out dir (shards are *.tar, see _build_files).
BUILD_NAMES = (
    MANIFEST_NAME, INDEX_NAME, REJECTS_NAME, "report.html", ".mix-journal.jsonl",
    ".mix-images.spill", "_work", CLAIM_NAME,
)  # fmt: skip


def identity(record: RecipeRecord, code_version: str) -> dict[str, object]:
    return {
        "recipe_digest": record.digest,
        "variables": dict(sorted(record.variables.items())),
        "code_version": code_version,
    }


def _build_files(out: Path) -> list[Path]:
    named = [out / n for n in BUILD_NAMES if (out / n).exists() or (out / n).is_symlink()]
    tars = [p for pat in ("*.tar", "*.tar.idx", ".*.tar.tmp") for p in out.glob(pat)]
    return sorted(set(named + tars))


def _recorded(out: Path) -> dict[str, object] | None:
    """The identity this dir was claimed with; from its manifest when it has no claim."""
    claim = out / CLAIM_NAME
    try:
        if claim.is_file():
            return json.loads(claim.read_text(encoding="utf-8"))
        manifest = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
        recipe = manifest["recipe"]
        return {
            "recipe_digest": recipe["digest"],
            "variables": dict(sorted(recipe.get("variables", {}).items())),
            "code_version": manifest["code_version"],
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _difference(old: dict[str, object] | None, new: dict[str, object]) -> str:
    if old is None:
        return "files of a build this mindvl cannot identify"
    for field in ("recipe_digest", "variables", "code_version"):
        if field == "code_version" and same_code(str(old.get(field)), str(new[field])):
            continue  # same engine source (git describe may differ: docs, a Ray job's copy)
        if old.get(field) != new[field]:
            return f"another build ({field.replace('_', ' ')} {old.get(field)!r} vs {new[field]!r})"
    return ""


def claim_out_dir(out: Path, ident: dict[str, object], overwrite: bool = False) -> str:
    """Claim ``out`` for the build ``ident``; returns "new", "resume" or "overwrite"."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    found = _build_files(out)
    state = "new"
    if any(p.name != CLAIM_NAME for p in found):  # a claim alone holds nothing to resume
        why = _difference(_recorded(out), ident)
        if not why:
            state = "resume"
        elif not overwrite:
            raise UserError(
                f"--out {out} holds {why}; choose another --out, or pass --overwrite to "
                f"remove its build files ({len(found)}: shards, manifest, staging)"
            )
        else:
            for p in found:
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
            state = "overwrite"
    tmp = out / (CLAIM_NAME + ".tmp")
    tmp.write_text(json.dumps(ident, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(out / CLAIM_NAME)
    return state

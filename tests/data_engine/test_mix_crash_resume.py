"""A build SIGKILLed while writing shards resumes to the same bytes; bad shards are rewritten."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from mixkit_helpers import make_candidates, make_recipe, make_tokenizer, write_staging

from mindvl.common.manifest import RatioManifest
from mindvl.data_engine.accounting import BuildAccounting
from mindvl.data_engine.mix import write_stage

HERE = Path(__file__).parent
SOURCES = [("a", "caption"), ("c", "ocr")]
MIX = {"budget": 60, "targets": {"caption": 0.5, "ocr": 0.5}, "max_repeat": 2}
SHARDS = {"max_samples": 8}

DRIVER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from crash_hook import install
    from mixkit_helpers import make_recipe
    from mindvl.data_engine.accounting import BuildAccounting
    from mindvl.data_engine.mix import write_stage
    tok, staging, out = (Path(p) for p in sys.argv[2:5])
    install(int(sys.argv[5]))
    recipe, record = make_recipe(tok, [("a", "caption"), ("c", "ocr")],
        {"budget": 60, "targets": {"caption": 0.5, "ocr": 0.5}, "max_repeat": 2},
        shards={"max_samples": 8})
    write_stage(staging, recipe, record, out, BuildAccounting())
    """
)


def outputs(d: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(d.iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


def test_sigkill_mid_shard_then_rerun_gives_identical_bytes(tmp_path):
    tok = make_tokenizer(tmp_path / "tok")
    staging = write_staging(
        tmp_path / "st", make_candidates({("a", "caption"): 40, ("c", "ocr"): 20})
    )
    recipe, record = make_recipe(tok, SOURCES, MIX, shards=SHARDS)
    clean = write_stage(staging, recipe, record, tmp_path / "clean", BuildAccounting())
    assert len(clean.shards) == 8
    cut = clean.shards[0].bytes + clean.shards[1].bytes + clean.shards[2].bytes // 2

    out = tmp_path / "crashed"
    (tmp_path / "driver.py").write_text(DRIVER)
    args = [
        sys.executable,
        str(tmp_path / "driver.py"),
        str(HERE),
        str(tok),
        str(staging),
        str(out),
        str(cut),
    ]
    proc = subprocess.run(args, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    # Killed in the middle of the third shard: two finished shards, one partial temp file.
    assert sorted(p.name for p in out.glob("s1-*.tar")) == ["s1-000000.tar", "s1-000001.tar"]
    assert list(out.glob(".s1-000002.tar.tmp")) and not (out / "manifest.json").exists()
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("s1-*.tar")}

    resumed = write_stage(staging, recipe, record, out, BuildAccounting())
    assert outputs(out) == outputs(tmp_path / "clean")
    assert resumed == clean
    # The finished shards were reused, not rewritten; the temp file is gone.
    assert {n: (out / n).stat().st_mtime_ns for n in before} == before
    assert not list(out.glob(".*.tmp"))
    assert RatioManifest.load(out).total_samples == 60


def test_a_shard_that_fails_verification_is_rewritten(tmp_path):
    tok = make_tokenizer(tmp_path / "tok")
    staging = write_staging(
        tmp_path / "st", make_candidates({("a", "caption"): 40, ("c", "ocr"): 20})
    )
    recipe, record = make_recipe(tok, SOURCES, MIX, shards=SHARDS)
    out = tmp_path / "out"
    write_stage(staging, recipe, record, out, BuildAccounting())
    good = outputs(out)
    bad = out / "s1-000003.tar"
    data = bytearray(bad.read_bytes())
    data[700] ^= 0xFF  # same size, different bytes
    bad.write_bytes(bytes(data))
    (out / "s1-000005.tar").unlink()
    untouched = (out / "s1-000004.tar").stat().st_mtime_ns
    write_stage(staging, recipe, record, out, BuildAccounting())
    assert outputs(out) == good
    assert (out / "s1-000004.tar").stat().st_mtime_ns == untouched

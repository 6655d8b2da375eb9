"""Same recipe + same inputs => byte-identical shards, manifest, index and rejects, whatever
the Ray parallelism (1 vs 2 CPUs), with filters, exact+near dedup and decontamination on.
Uses the shipped warm-up recipe on a small corpus-kit corpus with planted faults."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from mindvl.common.tokenizer_train import iter_texts, train_bpe_tokenizer
from mindvl.data_engine.synth.kit import generate_corpus

RECIPE = Path(__file__).resolve().parents[2] / "pipelines" / "data" / "warmup.yaml"


def digests(build: Path) -> dict[str, str]:
    """Every visible file but report.html, whose timings section holds wall-clock seconds
    (without it the report is byte-stable: test_mix_write_stage)."""
    names = [
        p for p in sorted(build.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.name != "report.html"
    ]  # fmt: skip
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in names}


def test_build_is_byte_identical_across_parallelism(tmp_path):
    generate_corpus(tmp_path / "kit", 96, "webdataset", faults=0.2, seed=5, max_side=160)
    generate_corpus(tmp_path / "heldout", 16, "webdataset", seed=5, max_side=160, heldout=True)
    train_bpe_tokenizer(iter_texts([tmp_path / "kit" / "truth.parquet"]), 512, tmp_path / "tok")
    outs = {}
    for cpus in (1, 2):
        out = tmp_path / f"build{cpus}"
        proc = subprocess.run(
            [sys.executable, "-m", "mindvl.common.cli", "data", "build", str(RECIPE), "--out", str(out),
             "--num-cpus", str(cpus), "--var", f"corpus={tmp_path / 'kit'}",
             "--var", f"heldout={tmp_path / 'heldout'}", "--var", f"tokenizer={tmp_path / 'tok'}",
             "--var", "budget=4000"],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[cpus] = digests(out)
    assert any(name.endswith(".tar") for name in outs[1])
    assert {"manifest.json", "index.parquet", "rejects.parquet"} <= set(outs[1])
    assert outs[1] == outs[2]

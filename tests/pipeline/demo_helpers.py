"""Shared by the demo tests: run `mindvl demo` in a subprocess, and read its evaluation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mindvl.common.report.eval_sections import shown_setting


def run_demo(out: Path, *args: str, timeout: int) -> subprocess.CompletedProcess:
    """``mindvl demo --out OUT ARGS``; fails the test with the output's tail if it fails."""
    proc = subprocess.run(
        [sys.executable, "-m", "mindvl.common.cli", "demo", "--out", str(out), *args],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def clear_wins(report: dict, min_n: int = 50, margin: float = 0.1) -> dict[str, tuple]:
    """Tasks where the model beats the majority-answer baseline by ``margin`` on at least
    ``min_n`` scored questions, at the setting the report shows."""
    setting, _ = shown_setting(report)
    assert setting is not None
    return {
        name: (t["accuracy"], t["baseline_accuracy"], t["n"])
        for name, t in setting["tasks"].items()
        if t["n"] >= min_n and t["accuracy"] - t["baseline_accuracy"] >= margin
    }

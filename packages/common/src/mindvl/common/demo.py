"""``mindvl demo``: the README's first command. Each step runs as its own ``mindvl``
subprocess, so the demo only needs the command line of the installed packages."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import click
from mindvl.common.errors import UserError


def run_step(args: list[str], log: Path) -> None:
    """Run ``mindvl ARGS``; on failure show the tail of its log and stop."""
    t0 = time.time()
    click.echo(f"$ mindvl {' '.join(args)}")
    with open(log, "ab") as f:
        proc = subprocess.run(
            [sys.executable, "-m", "mindvl.common.cli", *args], stdout=f, stderr=subprocess.STDOUT
        )
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        click.echo("\n".join(tail), err=True)
        raise UserError(
            f"step failed (exit {proc.returncode}): mindvl {' '.join(args)}; full log in {log}"
        )
    click.echo(f"  done in {time.time() - t0:.1f}s")


@click.command("demo")
@click.option("--out", default="out/demo", show_default=True, type=click.Path(path_type=Path))
@click.option("--n", default=800, show_default=True, type=click.IntRange(min=8), help="corpus size")
@click.option("--seed", default=0, show_default=True)
def demo_command(out: Path, n: int, seed: int) -> None:
    """Generate a corpus with known truth (more stages join as the pipeline grows)."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "demo.log"
    log.write_bytes(b"")
    corpus = out / "corpus"
    run_step(
        [
            "data",
            "synth",
            "--out",
            str(corpus),
            "--n",
            str(n),
            "--format",
            "webdataset",
            "--faults",
            "0.1",
            "--seed",
            str(seed),
        ],
        log,
    )
    run_step(
        [
            "tokenizer",
            "train",
            str(corpus / "truth.parquet"),
            "--vocab-size",
            "1024",
            "--out",
            str(out / "tokenizer"),
        ],
        log,
    )
    click.echo(f"demo outputs in {out}")

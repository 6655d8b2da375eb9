"""``mindvl demo``: the whole recipe on a synthetic corpus, on this machine's CPU.

corpus kit (train + held-out) → tokenizer → data builds on local Ray (held-out eval set,
warm-up) → warm-up training (projector only) → multitask build, recaptioned by the warm-up
model, and SFT build → multitask training, then two continuations of it at different
sequence lengths (in parallel) → weight averaging → SFT training → resolution search +
evaluation → report.md / report.html.

``--size reduced`` is the check that the recipe learns, small enough for CI: the multitask
stage alone, on the corpus kit's scenes only (``pipelines/reduced/``), 600 steps from a
fresh model, evaluated on held-out scenes against the majority-answer baseline.

Every step is its own ``mindvl`` subprocess, so the demo only uses the command line of the
installed packages (``mindvl.common`` imports neither the data engine nor the trainer). The
data builds share one embedded Ray (``mindvl data ray-head``, started at the beginning and
stopped after the last build, before the long training steps; it goes down with the demo
however the demo ends). So does every step: killed with the demo's process group (Ctrl-C),
and on Linux also when the demo alone is killed, even by SIGKILL (``die_with_parent``).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import click

from mindvl.common.errors import UserError

PIPELINES = Path(__file__).resolve().parents[5] / "pipelines"


@dataclass(frozen=True)
class DemoSize:
    corpus: int
    heldout: int
    text_only: int
    max_side: int
    budgets: dict[str, int]
    steps: dict[str, int]
    qa_turns: int = 1  # questions per training scene (4 measured no better; docs/DEMO.md)
    describe: bool = True  # training scenes also ask for their caption
    heldout_qa_turns: int = 8  # questions per held-out scene, each scored on its own
    # torch threads of the single training stages (None: torch_threads()); the full demo
    # keeps the two its learning claim was measured with (docs/DEMO.md)
    train_threads: int | None = None


SIZES = {
    "full": DemoSize(
        corpus=3000,
        heldout=400,
        text_only=400,
        max_side=320,
        budgets={"warmup": 80_000, "multitask": 300_000, "sft": 3000},
        steps={"warmup": 30, "multitask": 1200, "multitask_seq": 150, "sft": 150},
        train_threads=2,
    ),  # fmt: skip
    "small": DemoSize(
        corpus=240,
        heldout=60,
        text_only=40,
        max_side=192,
        budgets={"warmup": 15_000, "multitask": 30_000, "sft": 200},
        steps={"warmup": 3, "multitask": 4, "multitask_seq": 3, "sft": 3},
    ),  # fmt: skip
    "reduced": DemoSize(
        corpus=3000,
        heldout=400,
        text_only=0,
        max_side=320,
        budgets={"multitask": 300_000},
        steps={"multitask": 600},
    ),  # fmt: skip
}


def child_env() -> dict[str, str]:
    """Children write bytecode (a cold transformers import costs tens of seconds without it)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    return env


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent is gone


def die_with_parent(parent: int) -> None:
    """``preexec_fn`` of a step: on Linux it gets SIGKILL when the demo is gone (its own
    children are the step's to stop: a build's Ray has its guard); a demo already gone
    before this ran ends the step at once."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


class Steps:
    """Runs ``mindvl`` subcommands, logging to one file and timing each step."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.timings: dict[str, float] = {}
        self.env: dict[str, str] = {}  # added to every step's environment
        self._head: subprocess.Popen | None = None
        self._stopping: subprocess.Popen | None = None  # a head told to stop
        self._address: list[str] = []

    @contextmanager
    def ray_head(self) -> Iterator[None]:
        """One embedded Ray for the demo's data builds (``mindvl data ray-head``) instead of
        a start-up per build. It starts in the background (:meth:`ray_address` waits for
        it) and stops when its stdin closes: at the end here, or when this process is gone
        however it went (then its guard kills every process of that Ray)."""
        with open(self.log, "ab") as f:
            self._head = subprocess.Popen(self.command(["data", "ray-head"]), stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=f, env=child_env())  # fmt: skip
        try:
            yield
        finally:
            self.stop_ray_head()
            head, self._stopping = self._stopping, None
            if head is not None:
                try:
                    head.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    head.kill()  # its guard then kills the Ray it started
                    head.wait()

    def stop_ray_head(self) -> None:
        """Let the demo's Ray go once its last build is done: it shuts down while the next
        step starts (the end of :meth:`ray_head` waits for it). Ray's idle processes take
        CPU time a training step would wait for, so no training step runs beside them."""
        head, self._head, self._address, self.env = self._head, None, [], {}
        if head is not None and head.stdin:
            head.stdin.close()
        self._stopping = self._stopping or head

    def ray_address(self) -> list[str]:
        """A build's ``--address ADDRESS`` for the demo's Ray (its auth settings go into
        every later step's environment); waits for the Ray to be up."""
        head = self._head
        if head is None:
            return []
        if not self._address:
            t0 = time.time()
            line = head.stdout.readline() if head.stdout else b""
            if not line:
                head.wait()
                raise UserError(
                    f"the demo's Ray did not start (exit {head.returncode}); log in {self.log}"
                )
            info = json.loads(line)
            self.env = dict(info["env"])
            self._address = ["--address", info["address"]]
            self.timings["wait for ray"] = round(time.time() - t0, 1)
        return self._address

    def command(self, args: list[str]) -> list[str]:
        return [sys.executable, "-m", "mindvl.common.cli", *args]

    def run(self, name: str, args: list[str]) -> None:
        self.parallel(name, [args])

    def parallel(self, name: str, jobs: list[list[str]]) -> None:
        t0 = time.time()
        for args in jobs:
            click.echo(f"$ mindvl {' '.join(args)}")
        with open(self.log, "ab") as f:
            procs = [
                subprocess.Popen(
                    self.command(a),
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    env={**child_env(), **self.env},
                    preexec_fn=partial(die_with_parent, os.getpid()),  # one thread: safe
                )  # fmt: skip
                for a in jobs
            ]
            codes = [p.wait() for p in procs]
        self.timings[name] = round(time.time() - t0, 1)
        for args, code in zip(jobs, codes, strict=True):
            if code != 0:
                tail = self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:]
                click.echo("\n".join(tail), err=True)
                raise UserError(
                    f"step {name} failed (exit {code}): mindvl {' '.join(args)}; full log in {self.log}"
                )
        click.echo(f"  {name}: {self.timings[name]:.1f}s")


def torch_threads() -> int:
    """Torch threads of a demo step that has the machine to itself: one CPU fewer than
    there are. Torch's threads wait for each other at every operator, so with one per core
    a step stalls whenever anything else takes a core (on 2 CPUs: one thread; docs/DEMO.md)."""
    return max(1, (os.cpu_count() or 2) - 1)


def _vars(**kw: object) -> list[str]:
    out: list[str] = []
    for k, v in kw.items():
        out += ["--var", f"{k}={v}"]
    return out


def _start(out: Path) -> Steps:
    out.mkdir(parents=True, exist_ok=True)
    log = out / "demo.log"
    log.write_bytes(b"")
    return Steps(log)


def _corpora(s: Steps, out: Path, size: DemoSize, seed: int) -> tuple[Path, Path, Path]:
    """Corpus kit (train + held-out) and the tokenizer trained on the train corpus."""
    corpus, heldout, tok = out / "corpus", out / "heldout", out / "tokenizer"
    s.parallel("corpus + heldout corpus", [
        ["data", "synth", "--out", str(corpus), "--n", str(size.corpus), "--format", "webdataset",
         "--faults", "0.1", "--seed", str(seed), "--max-side", str(size.max_side),
         "--text-only", str(size.text_only), "--qa-turns", str(size.qa_turns),
         *(["--describe"] if size.describe else [])],
        ["data", "synth", "--out", str(heldout), "--n", str(size.heldout), "--format",
         "webdataset", "--seed", str(seed), "--max-side", str(size.max_side), "--heldout",
         "--qa-turns", str(size.heldout_qa_turns)],
    ])  # fmt: skip
    s.run(
        "tokenizer",
        [
            "tokenizer",
            "train",
            str(corpus / "truth.parquet"),
            "--vocab-size",
            "1024",
            "--out",
            str(tok),
        ],
    )
    return corpus, heldout, tok


def run_reduced(s: Steps, out: Path, size: DemoSize, seed: int, pipelines: Path) -> Path:
    """Scenes-only multitask run; returns the evaluation report (JSON)."""
    corpus, heldout, tok = _corpora(s, out, size, seed)
    red = pipelines / "reduced"
    builds, run = {k: out / "builds" / k for k in ("heldout", "scenes")}, out / "runs" / "scenes"
    s.parallel("build heldout + scenes", [
        ["data", "build", "--overwrite", *s.ray_address(), str(red / "heldout.yaml"), "--out", str(builds["heldout"]),
         *_vars(heldout=heldout, tokenizer=tok)],
        ["data", "build", "--overwrite", *s.ray_address(), str(red / "scenes.yaml"), "--out", str(builds["scenes"]),
         *_vars(corpus=corpus, heldout=heldout, tokenizer=tok, budget=size.budgets["multitask"])],
    ])  # fmt: skip
    s.stop_ray_head()
    # one CPU for the loader worker (train.yaml), the others for torch
    s.run("train", ["train", "run", str(red / "train.yaml"), "--out", str(run),
                    *_vars(shards=builds["scenes"], steps=size.steps["multitask"], seed=seed,
                           threads=torch_threads())])  # fmt: skip
    report = out / "eval_report.json"
    s.run("eval", ["eval", str(run / "model"), "--data", str(builds["heldout"]), "--tasks",
                   str(pipelines / "eval" / "tasks.yaml"), "--max-pixels", "25088", "--out",
                   str(report), "--seq-len", "1024", "--max-patches", "8192",
                   "--threads", str(torch_threads())])  # fmt: skip
    (out / "timings.json").write_text(json.dumps(s.timings, indent=2) + "\n")
    return report


def run_demo(
    s: Steps, out: Path, size: DemoSize, seed: int, pipelines: Path, model: str = "small"
) -> tuple[Path, Path]:
    corpus, heldout, tok = _corpora(s, out, size, seed)
    builds = {k: out / "builds" / k for k in ("heldout", "warmup", "multitask", "sft")}
    runs = {
        k: out / "runs" / k
        for k in ("warmup", "multitask", "multitask_short", "multitask_long", "sft")
    }
    data, demo = pipelines / "data", pipelines / "demo"
    common = {"corpus": corpus, "heldout": heldout, "tokenizer": tok}
    threads = max(1, (os.cpu_count() or 2) // 2)  # each of two stages side by side
    single = size.train_threads or torch_threads()

    s.parallel("build heldout + warmup", [
        ["data", "build", "--overwrite", *s.ray_address(), str(data / "heldout.yaml"), "--out", str(builds["heldout"]),
         *_vars(heldout=heldout, tokenizer=tok)],
        ["data", "build", "--overwrite", *s.ray_address(), str(data / "warmup.yaml"), "--out", str(builds["warmup"]),
         *_vars(**common, budget=size.budgets["warmup"])],
    ])  # fmt: skip
    s.run("train warmup", ["train", "run", str(demo / "warmup.yaml"), "--out", str(runs["warmup"]),
                           *_vars(shards=builds["warmup"], steps=size.steps["warmup"], model=model, threads=single)])  # fmt: skip
    warm = runs["warmup"] / "model"
    s.parallel("build multitask (recaptioned) + sft", [
        ["data", "build", "--overwrite", *s.ray_address(), str(data / "multitask.yaml"), "--out", str(builds["multitask"]),
         *_vars(**common, budget=size.budgets["multitask"], captioner=warm)],
        ["data", "build", "--overwrite", *s.ray_address(), str(data / "sft.yaml"), "--out", str(builds["sft"]),
         *_vars(**common, budget=size.budgets["sft"])],
    ])  # fmt: skip
    s.stop_ray_head()  # the last build
    s.run("train multitask", ["train", "run", str(demo / "multitask.yaml"), "--out", str(runs["multitask"]),
                              *_vars(shards=builds["multitask"], init=warm, seq_len=1024, tokens_per_step=2048,
                                     steps=size.steps["multitask"], threads=single)])  # fmt: skip
    s.parallel("train multitask x2 seq lengths", [
        ["train", "run", str(demo / "multitask_seq.yaml"), "--out", str(runs[name]),
         *_vars(shards=builds["multitask"], init=runs["multitask"] / "model", seq_len=seq,
                tokens_per_step=2048, steps=size.steps["multitask_seq"], threads=threads)]
        for name, seq in (("multitask_short", 512), ("multitask_long", 1024))
    ])  # fmt: skip
    averaged = out / "runs" / "multitask_avg"
    s.run("average", ["ckpt", "average", str(runs["multitask_short"] / "model"),
                      str(runs["multitask_long"] / "model"), "-o", str(averaged)])  # fmt: skip
    s.run("train sft", ["train", "run", str(demo / "sft.yaml"), "--out", str(runs["sft"]),
                        *_vars(shards=builds["sft"], init=averaged, steps=size.steps["sft"], threads=single)])  # fmt: skip
    eval_report = out / "eval_report.json"
    s.run("resolution search + eval", ["eval", str(runs["sft"] / "model"), "--data", str(builds["heldout"]),
                                       "--tasks", str(pipelines / "eval" / "tasks.yaml"), "--resolution-search",
                                       "--max-pixels", "12544,25088,50176", "--out", str(eval_report),
                                       "--seq-len", "1024", "--max-patches", "8192",
                                       "--threads", str(torch_threads())])  # fmt: skip
    from mindvl.common.report import write_demo_report

    runs_for_report = {**runs, "multitask_avg": averaged}
    return write_demo_report(out, builds, runs_for_report, eval_report,
                             {"timings": s.timings, "title": "mindvl demo", "seed": seed, "model": model})  # fmt: skip


@click.command("demo")
@click.option("--out", default="out/demo", show_default=True, type=click.Path(path_type=Path))
@click.option("--size", type=click.Choice(sorted(SIZES)), default="full", show_default=True,
              help="full: the README demo (<= 15 min on 2 cores); small: a smoke run; "
                   "reduced: the multitask stage on scenes only, the CI check that it learns")  # fmt: skip
@click.option("--seed", default=0, show_default=True)
@click.option("--model", type=click.Choice(["small", "small_moe"]), default="small", show_default=True,
              help="small: dense LLM; small_moe: DeepSeek-V3-style MoE LLM (router balancing, "
                   "per-expert load in the report)")  # fmt: skip
@click.option("--pipelines", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="folder of data/, demo/ and eval/ configs (default: the checkout's pipelines/)")  # fmt: skip
def demo_command(out: Path, size: str, seed: int, model: str, pipelines: Path | None) -> None:
    """Run the whole recipe on a synthetic corpus: data builds on Ray, 3-stage training,
    averaging, resolution search, evaluation, and a report."""
    pipes = pipelines or PIPELINES
    if not (pipes / "data" / "warmup.yaml").is_file():
        raise UserError(f"pipeline configs not found under {pipes}; pass --pipelines")
    t0 = time.time()
    s = _start(out)
    with s.ray_head():
        if size == "reduced":
            report = run_reduced(s, out, SIZES[size], seed, pipes)
            click.echo(f"reduced run finished in {time.time() - t0:.0f}s: {report}")
            return
        md, html = run_demo(s, out, SIZES[size], seed, pipes, model)
    click.echo(f"demo finished in {time.time() - t0:.0f}s: {md} and {html}")

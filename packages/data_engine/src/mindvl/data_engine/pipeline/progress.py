"""Live per-stage progress of a build: read, filter, dedup, caption, write.

Stage tasks send per-batch counts to one small actor (fire and forget); a driver thread
polls it every ``interval`` seconds and draws one tqdm bar per stage (``bars``) or prints
one line per stage (``lines``). Polling in a thread keeps the display live while the
driver is blocked in a ``materialize`` (dedup runs read and filters that way).

Reporting is best-effort: the counts are for the console only (the funnel in the manifest
is computed from the staged rows), so a lost actor (killed by Ray's memory monitor, say)
or a failed poll stops the display with one line and never fails the build.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from mindvl.common.progress import Mode, bar, duration, eta

# the kinds stage tasks report, in pipeline order, and how the console names them
KINDS = {"read": "read", "filtered": "filter", "dedup": "dedup", "caption": "caption",
         "final": "write"}  # fmt: skip
POLL_TIMEOUT_S = 30.0
FINAL_WAIT_S = 5.0  # how long the final lines wait for counts still in flight


def count_by_source(table: pa.Table) -> dict[str, tuple[int, int]]:
    """source -> (kept, dropped) of a batch."""
    out: dict[str, list[int]] = {}
    dropped = table.column("drop_reason").is_valid().to_pylist()
    for src, d in zip(table.column("source").to_pylist(), dropped, strict=True):
        out.setdefault(src, [0, 0])[1 if d else 0] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def send(actor: Any, kind: str, table: pa.Table, units: int = 0, source: str = "") -> None:
    """Report a batch to the progress actor; never raises (the actor may be gone)."""
    if actor is None:
        return
    counts = count_by_source(table)
    if units and source:
        counts.setdefault(source, (0, 0))
    with contextlib.suppress(Exception):  # best-effort: the batch goes on without it
        actor.add.remote(kind, counts, units, source)


def count_stage(batch: pa.Table, actor: Any, kind: str) -> pa.Table:
    """A pass-through map that reports the rows leaving a stage (dedup, caption)."""
    send(actor, kind, batch)
    return batch


class ProgressCounts:
    """The actor's state (created with ``ray.remote(num_cpus=0)(ProgressCounts)``)."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, list[int]]] = {}  # kind -> source -> [kept, dropped]
        self.units: dict[str, int] = {}

    def add(self, kind: str, counts: dict[str, tuple[int, int]], units: int, source: str) -> None:
        per_source = self.counts.setdefault(kind, {})
        for src, (kept, dropped) in counts.items():
            c = per_source.setdefault(src, [0, 0])
            c[0] += kept
            c[1] += dropped
        if units:
            self.units[source] = self.units.get(source, 0) + units

    def snapshot(self) -> tuple[dict[str, dict[str, list[int]]], dict[str, int]]:
        return self.counts, self.units


def stage_totals(counts: dict[str, dict[str, list[int]]]) -> dict[str, tuple[int, int]]:
    """kind -> (kept, dropped) over all sources."""
    return {
        kind: (sum(c[0] for c in per.values()), sum(c[1] for c in per.values()))
        for kind, per in counts.items()
    }


def stage_input(totals: dict[str, tuple[int, int]], kind: str) -> int:
    """Rows a stage will see: every row read for the filters, the rows they kept after."""
    if kind == "filtered":
        return sum(totals.get("read", (0, 0)))
    return totals.get("filtered", (0, 0))[0]


def format_lines(
    counts: dict[str, dict[str, list[int]]], units: dict[str, int], total_units: int, elapsed: float
) -> list[str]:
    """One line per stage that has seen rows: samples, kept/dropped, rate, ETA."""
    totals = stage_totals(counts)
    done_units = sum(units.values())
    lines = []
    for kind, name in KINDS.items():
        if kind not in totals:
            continue
        kept, dropped = totals[kind]
        n = kept + dropped
        rate = n / elapsed if elapsed > 0 else 0.0
        if kind == "read":
            left = eta(done_units, total_units, elapsed)
            where = f"units {done_units}/{total_units}"
        else:
            reading = done_units < total_units
            target = stage_input(totals, kind)
            left = None if reading else eta(n, target, elapsed)
            where = f"of {target}{'+' if reading else ''}"
        left_text = "done" if left == 0 else f"ETA {duration(left)}"
        lines.append(
            f"[build] {name}: {n} samples {where} (kept {kept}, dropped {dropped}) "
            f"| {rate:.1f}/s | {left_text}"
        )
    return lines


class ProgressReporter:
    """Driver side: a thread polls the actor and draws bars or prints lines; best-effort."""

    def __init__(
        self,
        actor: Any,
        units_per_source: dict[str, int],
        interval: float = 5.0,
        echo: Callable[[str], None] | None = None,
        mode: Mode = "lines",
    ) -> None:
        self.actor, self.interval, self.mode = actor, interval, mode
        self.total_units = sum(units_per_source.values())
        self.echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        self.start_time = time.monotonic()
        self.bars: dict[str, Any] = {}
        self.lost: str | None = None  # why reporting stopped
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_lines: list[str] = []

    def start(self) -> None:
        if self.mode == "off":
            return
        self._thread = threading.Thread(target=self._loop, name="build-progress", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval) and self.poll():
            pass

    def poll(self) -> bool:
        """Fetch a snapshot and show it; False (and one line said) once reporting is lost."""
        if self.lost is not None:
            return False
        try:
            import ray

            counts, units = ray.get(self.actor.snapshot.remote(), timeout=POLL_TIMEOUT_S)
            self._show(counts, units)
        except Exception as err:  # noqa: BLE001 - losing the reporter never fails a build
            self.lost = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            self.echo(f"[build] progress display stopped ({self.lost}); the build goes on")
            return False
        return True

    def _show(self, counts: dict, units: dict[str, int]) -> None:
        elapsed = time.monotonic() - self.start_time
        if self.mode == "lines":
            lines = format_lines(counts, units, self.total_units, elapsed)
            if lines != self._last_lines:
                for line in lines:
                    self.echo(line)
                self._last_lines = lines
            return
        if self.mode == "bars":
            self._draw(stage_totals(counts), sum(units.values()))

    def _draw(self, totals: dict[str, tuple[int, int]], done_units: int) -> None:
        read = sum(totals.get("read", (0, 0)))
        for kind, name in KINDS.items():
            if kind not in totals:
                continue
            kept, dropped = totals[kind]
            if kind not in self.bars:
                total = self.total_units if kind == "read" else None
                unit = "unit" if kind == "read" else "sample"
                self.bars[kind] = bar(total, f"{name:<7}", "bars", unit, len(self.bars))
            b = self.bars[kind]
            n = done_units if kind == "read" else kept + dropped
            if kind != "read" and done_units >= self.total_units:
                b.total = stage_input(totals, kind)
            label = f"{read} samples" if kind == "read" else f"kept {kept} dropped {dropped}"
            b.set_postfix_str(label, refresh=False)
            b.update(n - b.n)

    def _await_last_counts(self) -> None:
        """Wait (at most ``FINAL_WAIT_S``) until every unit's read is counted: tasks send
        their counts fire-and-forget, so the last ones may still be on their way to the
        actor when the dataset is done, and the final lines would miss them."""
        end = time.monotonic() + FINAL_WAIT_S
        with contextlib.suppress(Exception):  # best-effort, like every poll
            import ray

            while time.monotonic() < end:
                _, units = ray.get(self.actor.snapshot.remote(), timeout=POLL_TIMEOUT_S)
                if sum(units.values()) >= self.total_units:
                    return
                time.sleep(0.1)

    def close(self) -> None:
        """Stop the thread, show the final counts, release the actor; never raises."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=POLL_TIMEOUT_S + 5)
            self._await_last_counts()
            self.poll()
        for b in self.bars.values():
            b.close()
        with contextlib.suppress(Exception):  # already gone is fine
            import ray

            ray.kill(self.actor)

"""Live per-source progress: read, past filters, dropped, kept, rate and ETA.

Stage tasks send per-batch counts to one small actor (fire and forget); the driver polls
it every few seconds and prints one line per source to stderr. The counts are for the
console only: the funnel in the manifest is computed from the staged rows themselves.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

FIELDS = ("read", "filtered_kept", "filtered_dropped", "final_kept", "final_dropped")


class ProgressCounts:
    """The actor's state (created with ``ray.remote(num_cpus=0)(ProgressCounts)``)."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}
        self.units: dict[str, int] = {}

    def add(self, kind: str, counts: dict[str, tuple[int, int]], units: int, source: str) -> None:
        for src, (kept, dropped) in counts.items():
            c = self.counts.setdefault(src, dict.fromkeys(FIELDS, 0))
            if kind == "read":
                c["read"] += kept + dropped
            elif kind == "filtered":
                c["filtered_kept"] += kept
                c["filtered_dropped"] += dropped
            else:
                c["final_kept"] += kept
                c["final_dropped"] += dropped
        if units:
            self.units[source] = self.units.get(source, 0) + units

    def snapshot(self) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
        return self.counts, self.units


def format_line(
    source: str, c: dict[str, int], done: int, total: int, elapsed: float, final: bool
) -> str:
    rate = c["read"] / elapsed if elapsed > 0 else 0.0
    if done and done < total:
        eta = f"ETA {elapsed * (total - done) / done:5.0f}s"
    else:
        eta = "reading done" if done >= total else "ETA ?"
    kept = c["final_kept"] if final else c["filtered_kept"]
    dropped = (c["final_dropped"] + c["filtered_dropped"]) if final else c["filtered_dropped"]
    return (
        f"[build] {source}: read {c['read']} kept {kept} dropped {dropped} "
        f"| {rate:6.1f}/s | units {done}/{total} | {eta}"
    )


class ProgressReporter:
    """Driver side: poll the actor at most every ``interval`` seconds and print lines."""

    def __init__(
        self,
        actor: Any,
        units_per_source: dict[str, int],
        interval: float = 5.0,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.actor, self.total, self.interval = actor, units_per_source, interval
        self.echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        self.start = time.monotonic()
        self.last = 0.0

    def tick(self, force: bool = False, final: bool = False) -> None:
        import ray

        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        counts, units = ray.get(self.actor.snapshot.remote())
        for source in sorted(self.total):
            c = counts.get(source, dict.fromkeys(FIELDS, 0))
            line = format_line(
                source, c, units.get(source, 0), self.total[source], now - self.start, final
            )
            self.echo(line)

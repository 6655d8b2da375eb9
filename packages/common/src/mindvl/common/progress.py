"""How the long-running commands (build, train, eval) show progress, chosen once per run.

``bars``: live tqdm bars on stderr (an interactive terminal); ``lines``: a plain line every
few seconds (logs of Ray jobs, a ``--progress-every`` asked for); ``off``: nothing but
the result (not a terminal, e.g. CI, or ``--quiet`` / ``--json``).
"""

from __future__ import annotations

import sys
from typing import Literal

Mode = Literal["bars", "lines", "off"]


def choose_mode(quiet: bool = False, every: float | None = None, stream=None) -> Mode:
    """``quiet`` wins; an explicit ``every`` asks for plain lines; else bars on a terminal."""
    if quiet:
        return "off"
    if every is not None:
        return "lines"
    stream = stream if stream is not None else sys.stderr
    return "bars" if getattr(stream, "isatty", lambda: False)() else "off"


def duration(seconds: float | None) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``; unknown -> ``?``."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def eta(done: float, total: float | None, elapsed: float) -> float | None:
    """Seconds left at the rate so far (None while nothing is done or the total is unknown)."""
    if not total or done <= 0 or elapsed <= 0:
        return None
    return max(0.0, elapsed * (total - done) / done)


def bar(total: int | None, desc: str, mode: Mode, unit: str = "it", position: int | None = None):
    """A tqdm bar on stderr that draws only in ``bars`` mode (a no-op object otherwise)."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=mode != "bars",
        file=sys.stderr,
        position=position,
        leave=True,
        dynamic_ncols=True,
        smoothing=0.1,
    )

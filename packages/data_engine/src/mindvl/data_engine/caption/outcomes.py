"""Counting what captioning did, for the build's funnel (stage ``caption``).

Captioning never drops a sample: a rejected or failed caption keeps the original text.
These counts say how many samples of each source kept their original and why, read back
from the rows' meta, so they are exact however many actors ran.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from mindvl.common.manifest import FunnelEntry
from mindvl.data_engine.caption.runner import ERROR_META, PROVENANCE_META
from mindvl.data_engine.record import Candidate

ACCEPTED = "accepted"


def caption_outcome(meta: dict[str, Any]) -> str | None:
    """``accepted``, ``rejected:<check>``, ``error:<type>``/``no_image``, or None (not captioned)."""
    if ERROR_META in meta:
        return str(meta[ERROR_META])
    raw = meta.get(PROVENANCE_META)
    if raw is None:
        return None
    prov = json.loads(raw) if isinstance(raw, str) else raw
    return ACCEPTED if prov.get("accepted", True) else f"rejected:{prov.get('reason')}"


def count_outcomes(rows: Iterable[Candidate | dict[str, Any]]) -> Counter[tuple[str, str]]:
    """(source, outcome) -> samples, over Candidates or their rows."""
    counts: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if isinstance(row, Candidate):
            source, meta = row.source, row.meta
        else:
            source, meta = row["source"], row.get("meta") or {}
            meta = json.loads(meta) if isinstance(meta, str) else meta
        outcome = caption_outcome(meta)
        if outcome is not None:
            counts[(source, outcome)] += 1
    return counts


def funnel_entries(counts: Counter[tuple[str, str]]) -> list[FunnelEntry]:
    """Samples that kept their original text, as funnel entries (they are NOT dropped)."""
    return [
        FunnelEntry(
            source=source, stage="caption", op="caption", reason=f"kept_original:{outcome}", count=n
        )
        for (source, outcome), n in sorted(counts.items())
        if outcome != ACCEPTED
    ]

"""What dedup decided about one row, and how that decision is written onto the row."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mindvl.data_engine.dedup.decontaminate import EvalIndex

STAGE = "dedup"
OP_EXACT, OP_NEAR, OP_EVAL = "exact_dedup", "near_dedup", "decontaminate"
REASON_SAME_PAIR = "same_image_and_text"  # same pixels and same text
REASON_SAME_PIXELS = "same_image"  # same pixels, different text (spec.exact)
REASON_NEAR = "near_duplicate"
REASON_EVAL = "eval_image"


@dataclass(frozen=True)
class Decision:
    """``op`` None: the row survives as the representative of ``group``."""

    key: str
    group: str
    survivor: str | None = None
    op: str | None = None
    reason: str | None = None


def apply_decision(row: dict[str, Any], decision: Decision | None) -> dict[str, Any]:
    """Write a decision onto a ``Candidate.to_row()`` dict (same effect as Candidate.drop)."""
    if decision is None:
        return row
    meta = row.get("meta")
    meta = json.loads(meta) if isinstance(meta, str) else dict(meta or {})
    meta["dup_group"] = decision.group
    if decision.op is not None:
        if decision.survivor is not None:
            meta["dup_survivor"] = decision.survivor
        row["drop_stage"], row["drop_op"], row["drop_reason"] = STAGE, decision.op, decision.reason
        row["images"] = []
    row["meta"] = json.dumps(meta, sort_keys=True, ensure_ascii=False)
    return row


def eval_match(row: dict[str, Any], index: EvalIndex | None) -> int | None:
    """Index of the eval image any of the row's images matches, or None."""
    if index is None or len(index) == 0 or row.get("drop_reason") is not None:
        return None
    pix = list(row.get("pixel_hashes") or [])
    ph = list(row.get("phashes") or [])
    sig = list(row.get("signatures") or [])
    info = list(row.get("information") or [])
    for i, p in enumerate(pix):
        hit = index.match(
            p,
            ph[i] if i < len(ph) else None,
            sig[i] if i < len(sig) else None,
            float(info[i]) if i < len(info) and info[i] is not None else None,
        )
        if hit is not None:
            return hit
    return None


def eval_decision(key: str, hit: int) -> Decision:
    return Decision(key=key, group=f"eval-{hit}", op=OP_EVAL, reason=REASON_EVAL)

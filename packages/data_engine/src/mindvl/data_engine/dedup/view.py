"""The dedup view of one row: the few fields dedup decides on, read from a Candidate row.

Works on ``Candidate.to_row()`` dicts (what Ray blocks hold) so the Ray stages never build
full Candidates. Rows without pixel hashes (no decoded image) take no part in dedup.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup.survivor import survivor_label


@dataclass(frozen=True)
class DedupItem:
    key: str
    label: str  # survivor_label: lexical min of a group survives
    exact_key: str  # grouping key of the exact stage (pixels, or pixels + text)
    pair_key: str  # pixels + text: equal pair keys = same image(s) and same text
    near_ok: bool  # one image, enough information, pHash and signature present
    low_information: bool  # one image whose information is below the threshold
    phash: int  # 64-bit pHash as an unsigned int (0 unless near_ok)
    signature: bytes  # signature_format.py bytes (empty unless near_ok)


def _list(value: Any) -> list:
    return [] if value is None else list(value)


def row_text(row: dict[str, Any]) -> str:
    """Same text as ``Candidate.text()``, whitespace-normalised, from a row."""
    if row.get("caption") is not None:
        text = row["caption"]
    else:
        conv = row.get("conversation")
        turns = json.loads(conv) if isinstance(conv, str) else (conv or [])
        text = "\n".join(t.get("content", "") for t in turns)
    return " ".join(text.split())


def dedup_item(row: dict[str, Any], spec: DedupSpec) -> DedupItem | None:
    """The row's dedup view, or None when the row takes no part (dropped, or no pixels)."""
    if row.get("drop_reason") is not None:
        return None
    pixel_hashes = _list(row.get("pixel_hashes"))
    if not pixel_hashes or any(not p for p in pixel_hashes):
        return None
    key = row["key"]
    widths, heights = _list(row.get("widths")), _list(row.get("heights"))
    area = sum(int(w) * int(h) for w, h in zip(widths, heights, strict=False))
    quality = row.get("quality")
    pix = hashlib.sha256("|".join(pixel_hashes).encode()).hexdigest()
    pair = hashlib.sha256(f"{pix}\0{row_text(row)}".encode()).hexdigest()
    phashes, sigs = _list(row.get("phashes")), _list(row.get("signatures"))
    info = _list(row.get("information"))
    single = len(pixel_hashes) == 1 and len(phashes) == 1 and len(info) == 1
    low = single and float(info[0]) < spec.near.min_information
    near_ok = (
        spec.near.enabled
        and single
        and not low
        and bool(phashes[0])
        and (not spec.near.verify or (len(sigs) == 1 and bool(sigs[0])))
    )
    return DedupItem(
        key=key,
        label=survivor_label(key, area, None if quality is None else float(quality)),
        exact_key=pix if spec.exact else pair,
        pair_key=pair,
        near_ok=near_ok,
        low_information=low and spec.near.enabled,
        phash=int(phashes[0], 16) if near_ok else 0,
        signature=bytes.fromhex(sigs[0]) if near_ok and sigs and sigs[0] else b"",
    )

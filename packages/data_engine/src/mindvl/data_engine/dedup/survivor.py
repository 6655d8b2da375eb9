"""Which member of a duplicate group survives, as a sortable label.

Rule: more pixels (sum of width*height over the sample's images), then a higher quality
score (``None`` ranks below any score), then the smaller sha256 of the key. The rule looks
only at the members themselves, so the same input keeps the same survivors whatever the
number of workers, block sizes or row order. ``survivor_label`` encodes the rule as a
fixed-width string whose lexical minimum is the survivor; the key is appended, so the
label of a group is also the survivor's key (``label_key``).
"""

from __future__ import annotations

import hashlib
import math
import struct

_AREA_MAX = (1 << 64) - 1


def _quality_code(quality: float | None) -> int:
    """Order-preserving 64-bit code of a float, inverted so that a higher score is smaller."""
    if quality is None or math.isnan(quality):
        return (1 << 64) - 1
    bits = struct.unpack(">Q", struct.pack(">d", float(quality)))[0]
    ordered = (~bits & ((1 << 64) - 1)) if bits >> 63 else bits | (1 << 63)
    return ((1 << 64) - 1) - ordered  # ordered >= 1 for every non-NaN float


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def survivor_label(key: str, area: int, quality: float | None) -> str:
    """Sortable label: min over a group = its survivor (see module docstring)."""
    area = max(0, min(int(area), _AREA_MAX))
    return f"{_AREA_MAX - area:016x}{_quality_code(quality):016x}{key_digest(key)}{key}"


def label_key(label: str) -> str:
    """The key a label was made from."""
    return label[32 + 64 :]


def group_id(survivor_key: str) -> str:
    """Stable id of a duplicate group, derived from its survivor's key."""
    return "dup-" + key_digest(survivor_key)[:16]

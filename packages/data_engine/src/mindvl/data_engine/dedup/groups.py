"""The steps of dedup around the comparison, each plain Python over one row, one group or
one list of pairs: each row's view, exact groups, near groups (components of accepted
pairs split into stars), survivors and decisions.

Survivor rule: more pixels (sum of width*height over the sample's images), then a higher
quality score (``None`` ranks below any score), then the smaller sha256 of the key.
``survivor_label`` encodes it as a fixed-width string whose lexical minimum is the
survivor, with the key appended (``label_key``): every choice is a minimum over labels, so
the same input keeps the same survivors whatever the workers, blocks or row order.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from mindvl.data_engine.dedup.compare import PairVerifier
from mindvl.data_engine.dedup.fingerprint import parse_signature
from mindvl.data_engine.dedup.rule import NearRule

STAGE = "dedup"
OP_EXACT, OP_NEAR, OP_EVAL = "exact_dedup", "near_dedup", "decontaminate"
REASON_SAME_PAIR = "same_image_and_text"  # same pixels and same text
REASON_SAME_PIXELS = "same_image"  # same pixels, different text (spec.exact)
REASON_NEAR = "near_duplicate"
REASON_EVAL = "eval_image"
_MAX64 = (1 << 64) - 1


def _quality_code(quality: float | None) -> int:
    """Order-preserving 64-bit code of a float, inverted so that a higher score is smaller."""
    if quality is None or math.isnan(quality):
        return _MAX64
    bits = struct.unpack(">Q", struct.pack(">d", float(quality)))[0]
    ordered = (~bits & _MAX64) if bits >> 63 else bits | (1 << 63)
    return _MAX64 - ordered


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def survivor_label(key: str, area: int, quality: float | None) -> str:
    """Sortable label: the minimum over a group is its survivor."""
    area = max(0, min(int(area), _MAX64))
    return f"{_MAX64 - area:016x}{_quality_code(quality):016x}{key_digest(key)}{key}"


def label_key(label: str) -> str:
    """The key a label was made from."""
    return label[32 + 64 :]


def group_id(survivor_key: str) -> str:
    """Stable id of a duplicate group, derived from its survivor's key."""
    return "dup-" + key_digest(survivor_key)[:16]


@dataclass(frozen=True)
class Item:
    """The dedup view of one row after the exact step."""

    key: str
    label: str  # survivor_label
    exact_key: str  # pixels (spec.exact) or pixels + text; an eval match: a group alone
    pair_key: str  # pixels + text
    near_ok: bool  # one image, enough information, a pHash and a signature
    low: bool  # one image below ``min_information`` (exact dedup only)
    phash: int  # 64-bit pHash (0 unless near_ok)
    sig: bytes  # signature (empty unless near_ok)
    eval_hit: int = -1  # the eval image the row matches, -1: none
    rep_label: str = ""  # the exact group's representative (its smallest label)
    same_pair: bool = False  # same pixels and text as the representative
    in_group: bool = False  # a representative whose exact group has other members

    @property
    def is_rep(self) -> bool:
        return self.rep_label == self.label


def row_text(row: dict[str, Any]) -> str:
    """Same text as ``Candidate.text()``, whitespace-normalised, from a row."""
    if row.get("caption") is not None:
        text = row["caption"]
    else:
        conv = row.get("conversation")
        turns = json.loads(conv) if isinstance(conv, str) else (conv or [])
        text = "\n".join(t.get("content", "") for t in turns)
    return " ".join(text.split())


def view(row: dict[str, Any], exact: bool, rule: NearRule, match: Callable | None) -> Item | None:
    """A ``Candidate.to_row()`` dict's view, or None when dedup leaves the row alone (dropped
    already, or an image without pixel hash); ``match(row)``: its eval image or None."""
    if row.get("drop_reason") is not None:
        return None
    key = row["key"]
    hit = match(row) if match is not None else None
    if hit is not None:
        tag = "eval:" + key  # a group of its own
        return Item(key, tag, tag, "", False, False, 0, b"", hit)
    pixel_hashes = list(row.get("pixel_hashes") or [])
    if not pixel_hashes or not all(pixel_hashes):
        return None
    widths, heights = row.get("widths") or [], row.get("heights") or []
    area = sum(int(w) * int(h) for w, h in zip(widths, heights, strict=False))
    quality = row.get("quality")
    pix = hashlib.sha256("|".join(pixel_hashes).encode()).hexdigest()
    pair = hashlib.sha256(f"{pix}\0{row_text(row)}".encode()).hexdigest()
    phashes, sigs = list(row.get("phashes") or []), list(row.get("signatures") or [])
    info = list(row.get("information") or [])
    single = len(pixel_hashes) == 1 and len(phashes) == 1 and len(info) == 1
    low = single and float(info[0]) < rule.min_information
    near_ok = (
        rule.enabled
        and single
        and not low
        and bool(phashes[0])
        and (not rule.verify or (len(sigs) == 1 and bool(sigs[0])))
    )
    sig = bytes.fromhex(sigs[0]) if near_ok and sigs and sigs[0] else b""
    phash = int(phashes[0], 16) if near_ok else 0
    return Item(
        key=key,
        label=survivor_label(key, area, None if quality is None else float(quality)),
        exact_key=pix if exact else pair,
        pair_key=pair,
        near_ok=near_ok,
        low=low and rule.enabled,
        phash=phash,
        sig=sig,
    )


def exact_group(items: list[Item]) -> list[Item]:
    """One exact group (equal ``exact_key``): the smallest label represents it."""
    items = sorted(items, key=lambda it: it.label)
    rep = items[0]
    return [
        replace(it, rep_label=rep.label, same_pair=it.pair_key == rep.pair_key,
                in_group=i == 0 and len(items) > 1)
        for i, it in enumerate(items)
    ]  # fmt: skip


def components(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Label of each node 0..n-1 = the smallest node index of its component."""
    graph = coo_matrix((np.ones(len(left), dtype=bool), (left, right)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    _, first = np.unique(component, return_index=True)  # the smallest node of each
    return first[component]


def star_members(labels: list[str], sig_of, verifier: PairVerifier, pairs) -> list[list[str]]:
    """A component of accepted pairs as stars: the smallest label survives with the members
    that the rule accepts against it themselves; the rest is split the same way again
    (accepted pairs chain: A~B and B~C while A and C differ). A member waits for a later
    star when one it was paired with (``pairs``: label -> the labels of its accepted pairs)
    that the survivor is not accepted with is clearly closer to it (``closeness``): found
    in it by its pixels while the survivor is not, or, both or neither, with a gray p99
    lower by more than ``closer_margin`` (a crop or a resized JPEG can fit two pictures the
    rule tells apart; it goes with the closer). Two members of one size that the rule finds
    to differ in a detail cannot stay together (``_told_apart_leave``). Stars of two or more
    members, each sorted."""

    def stays(member: str, top: bytes, others: list[str]) -> bool:
        if not others:
            return True
        found, p99 = verifier.closeness(sig_of[member], top)  # once, not per other
        for other in others:
            found_other, p99_other = verifier.closeness(sig_of[member], sig_of[other])
            if found > found_other or (
                found == found_other and p99 > p99_other + verifier.rule.closer_margin
            ):
                return False
        return True

    rest, stars = sorted(labels), []
    while len(rest) > 1:
        top = sig_of[rest[0]]
        agree = [lab for lab in rest[1:] if verifier.agree(sig_of[lab], top)]
        apart = set(rest[1:]).difference(agree)
        star = [rest[0]] + [
            lab for lab in agree if stays(lab, top, sorted(apart.intersection(pairs.get(lab, ()))))
        ]
        star = _told_apart_leave(star, sig_of, verifier)
        if len(star) > 1:
            stars.append(star)
        chosen = set(star)
        rest = [lab for lab in rest if lab not in chosen]
    return stars


# the checks that find two pictures of one size to differ in a detail (a glyph, an emblem,
# a frame's change, a shade), not merely to be far apart (``gray``: two lossy copies, say a
# JPEG of one picture and a crop of its near-identical sibling, can be that)
TOLD_APART = ("levels", "one_size", "pixels")


def _told_apart_leave(star: list[str], sig_of, verifier: PairVerifier) -> list[str]:
    """The star without members that differ in a detail from a closer member of their size:
    members join in order of closeness to the survivor (``closeness``), and one that
    ``first_failing_check`` tells apart (``TOLD_APART``) from a member already in leaves
    for a later star. A pad or crop can fit two frames of one drawing the rule tells apart
    at their own size (a padded tile beside its animation frames); only the closer stays."""
    if len(star) < 3:
        return star
    top, sizes = sig_of[star[0]], {lab: parse_signature(sig_of[lab]).size for lab in star}
    order = sorted(star[1:], key=lambda lab: (verifier.closeness(sig_of[lab], top), lab))
    kept: list[str] = []
    for lab in order:
        if all(sizes[k] != sizes[lab] or verifier.check(sig_of[lab], sig_of[k]) not in TOLD_APART
               for k in kept):  # fmt: skip
            kept.append(lab)
    return [star[0], *sorted(kept)]


def near_groups(edges: list[tuple[str, str]], sig_of: dict[str, bytes], rule: NearRule):
    """Survivor label of every member of a near group: components of the accepted pairs
    (labels ``edges``), split into stars around survivors when the rule compares (accepted
    pairs chain: A~B and B~C while A and C differ). Returns ``{label: survivor label}``."""
    if not edges:
        return {}
    ends = np.array([x for e in edges for x in e])
    nodes, inv = np.unique(ends, return_inverse=True)  # sorted: the smallest label first
    roots = components(nodes.size, inv[0::2], inv[1::2])
    members: dict[int, list[str]] = {}
    for i, root in enumerate(roots.tolist()):
        members.setdefault(root, []).append(str(nodes[i]))
    verifier, pairs = PairVerifier(rule), {}
    for a, b in edges:
        pairs.setdefault(a, set()).add(b)
        pairs.setdefault(b, set()).add(a)
    out = {}
    for group in members.values():
        stars = star_members(group, sig_of, verifier, pairs) if rule.verify else [group]
        for star in stars:
            out.update((label, star[0]) for label in star)
    return out


@dataclass(frozen=True)
class Decision:
    """``op`` None: the row survives as the representative of ``group``."""

    key: str
    group: str
    survivor: str | None = None
    op: str | None = None
    reason: str | None = None


def decide(item: Item, survivor_of: dict[str, str]) -> Decision | None:
    """The decision for one row after the exact step; ``survivor_of``: ``near_groups``'
    result (survivor label of every near group member). None: dedup leaves the row as is."""
    if item.eval_hit >= 0:
        return Decision(item.key, f"eval-{item.eval_hit}", None, OP_EVAL, REASON_EVAL)
    top = survivor_of.get(item.rep_label, item.rep_label)
    top_key = label_key(top)
    gid = group_id(top_key)
    if not item.is_rep:
        reason = REASON_SAME_PAIR if item.same_pair else REASON_SAME_PIXELS
        return Decision(item.key, gid, top_key, OP_EXACT, reason)
    if top != item.label:
        return Decision(item.key, gid, top_key, OP_NEAR, REASON_NEAR)
    if item.in_group or item.label in survivor_of:
        return Decision(item.key, gid)
    return None


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


def exact_counts(items: list[Item]) -> dict[str, int]:
    """Counters of the exact step over some of its rows (they add up over blocks)."""
    reps = [it for it in items if it.is_rep and it.eval_hit < 0]
    return {
        "decontaminated": sum(it.eval_hit >= 0 for it in items),
        "exact_groups": sum(it.in_group for it in reps),
        "exact_dropped": sum(not it.is_rep for it in items),
        "low_information_exact_only": sum(it.low for it in reps),
        "near_nodes": sum(it.near_ok for it in reps),
        "signature_bytes": sum(len(it.sig) for it in items),
    }

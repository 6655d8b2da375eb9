"""Dedup quality on real pictures: the corpus of ``bench/real_images_set.py`` (icon themes,
flags, line art from Debian packages, with planted copies and a pixel-checked truth).

Every picture is fingerprinted as a build does (``image_features``) and deduplicated by the
pure core (``plan_dedup``, default recipe; ``local.py``, what a build's local route runs).
Measured against the truth:

- exact recall: byte copies and PNG re-saves ending in their original's group (or dropped
  for a pixel-checked repeat of it: ``is_found``);
- near recall (and per planted transform): resized PNGs, JPEGs on white, padded, cropped;
- precision: drops whose survivor is the same picture (same truth group);
- ``transparent_wrong``: wrong drops where either picture has transparency;
- ``by_design``: wrong drops between pictures whose originals have one size and differ in
  under ``DESIGN_SHARE`` of the pixels at their best small move (variants drawn or
  re-exported to be near-identical, finer than the 48x48 signature: counted, not excused).

- ``same_size_jpeg``: a pair check, not a build: the first ``REENCODE_ICONS`` originals of at
  most 64 px a side (by key), each flattened on white and saved as a JPEG of its own size
  at quality 75 and 90 (no planted kind keeps the size), and how many of those pairs the
  rule accepts (``PairVerifier``, the pair alone).

The same corpus is also grouped by pHash alone within 10 bits (imagededup's PHash default
threshold, via imagehash's pHash), without any verification, for comparison.

Usage: uv run python bench/dedup_real.py [--corpus bench/data/real_images]
        [--json bench/results/dedup_real.json] [--show 20] [--max-hamming K]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
from dedup_quality import feature_row, rates, spec_of
from PIL import Image
from real_images_set import composites, moves

NEAR_KINDS = ("resize", "jpeg_white", "pad", "crop")
EXACT_KINDS = ("copy", "resave")
DESIGN_SHARE = 0.02  # at most this share of pixels differ (by > 32 in a channel)
REENCODE_ICONS = 400  # icons re-encoded as JPEGs of their own size (``same_size_jpeg``)


def rows_of(corpus: Path, truth: dict) -> list[dict]:
    from mindvl.data_engine.ops.image_decode import DecodeFailure, image_features

    rows = []
    for name, t in sorted(truth.items()):
        try:
            f = image_features((corpus / "images" / t["file"]).read_bytes(), blur=False)
        except DecodeFailure:
            continue
        rows.append(feature_row(name, f))
    return rows


def by_design(corpus: Path, truth: dict, a: str, b: str) -> bool:
    """The originals of a and b (each itself when it is one) have one size and, at the best
    whole-picture move of up to ``real_images_set.REPEAT_MOVE`` pixels (the truth's), differ
    by more than 32 levels on white or on black in under ``DESIGN_SHARE`` of the pixels."""
    ta, tb = (truth[truth[k].get("of", k)] for k in (a, b))
    x, y = (composites(Image.open(corpus / "images" / t["file"])) for t in (ta, tb))
    if x.shape != y.shape:
        return False
    return any((np.abs(p - q).max(-1).max(0) > 32).mean() < DESIGN_SHARE for p, q in moves(x, y))


def same_size_jpeg(corpus: Path, truth: dict) -> dict[str, str]:
    """Per JPEG quality, the share of same-size JPEG re-encodes of icons the rule accepts
    against their originals (module docstring)."""
    from mindvl.data_engine.dedup.compare import PairVerifier
    from mindvl.data_engine.dedup.rule import NearRule
    from mindvl.data_engine.ops.image_decode import image_features

    verifier, accepted, n = PairVerifier(NearRule()), Counter(), 0
    for _, t in sorted(truth.items()):
        data = (corpus / "images" / t["file"]).read_bytes() if t["kind"] == "original" else b""
        img = Image.open(io.BytesIO(data)) if data else None
        if img is None or max(img.size) > 64:
            continue
        rgba = img.convert("RGBA")
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255,) * 4), rgba)
        own = bytes.fromhex(image_features(data, blur=False).signature)
        for q in (75, 90):
            buf = io.BytesIO()
            flat.convert("RGB").save(buf, "JPEG", quality=q)
            copy = bytes.fromhex(image_features(buf.getvalue(), blur=False).signature)
            accepted[q] += verifier.agree(own, copy)
        n += 1
        if n == REENCODE_ICONS:
            break
    return {f"q{q}": f"{accepted[q]}/{n}" for q in (75, 90)}


def transparent(truth: dict, name: str) -> bool:
    t = truth[name]
    return truth[t.get("of", name)]["transparent"]


def is_found(truth: dict, cluster: dict, copy: str) -> bool:
    """A planted copy is found when it ends in its original's group, or is dropped for
    another picture of its truth group (a package's own repeat of the original)."""
    survivor = cluster.get(copy, copy)
    if survivor == cluster.get(truth[copy]["of"], truth[copy]["of"]):
        return True
    return survivor != copy and truth[survivor]["group"] == truth[copy]["group"]


def measure(corpus: Path, truth: dict, keys: set, cluster: dict, drops: list) -> dict:
    """``cluster``: key -> its survivor (itself when kept); ``drops``: (key, survivor)."""
    found, total = Counter(), Counter()
    for k, t in truth.items():
        if t["kind"] == "original" or k not in keys or t["of"] not in keys:
            continue
        for kind in ("exact" if t["kind"] in EXACT_KINDS else "near", t["kind"]):
            total[kind] += 1
            found[kind] += is_found(truth, cluster, k)
    wrong = [(a, b) for a, b in drops if truth[a]["group"] != truth[b]["group"]]
    design = [(a, b) for a, b in wrong if by_design(corpus, truth, a, b)]
    return {
        **rates(found, total, len(drops), len(wrong)),
        "transparent_wrong": sum(transparent(truth, a) or transparent(truth, b) for a, b in wrong),
        "by_design": len(design),
        "recall_by_transform": {k: f"{found[k]}/{total[k]}" for k in EXACT_KINDS + NEAR_KINDS},
        "near_missed": [k for k, t in truth.items() if t["kind"] in NEAR_KINDS and k in keys
                        and not is_found(truth, cluster, k)],
        "wrong": [[a, b] for a, b in wrong],
    }  # fmt: skip


def phash_only(rows: list[dict], max_bits: int = 10) -> tuple[dict, list]:
    """Greedy pHash grouping within ``max_bits`` (imagededup's PHash default): in key order,
    each picture joins the first kept picture within the distance."""
    keys = [r["key"] for r in rows]
    hashes = np.array([int(r["phashes"][0], 16) for r in rows], dtype=np.uint64)
    kept, cluster, drops = [], {}, []
    for i, k in enumerate(keys):
        if kept:
            d = np.bitwise_count(hashes[kept] ^ hashes[i])
            j = int(np.argmin(d))
            if d[j] <= max_bits:
                cluster[k] = keys[kept[j]]
                drops.append((k, keys[kept[j]]))
                continue
        kept.append(i)
        cluster[k] = k
    return cluster, drops


def describe(truth: dict, name: str) -> str:
    t = truth[name]
    return f"{t['package']}:{t['path']} ({t['kind']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("bench/data/real_images"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--show", type=int, default=20, help="wrong drops / misses to print")
    parser.add_argument("--max-hamming", type=int, default=None, help="near.max_hamming")
    args = parser.parse_args()

    from mindvl.data_engine.dedup import plan_dedup

    data = json.loads((args.corpus / "truth.json").read_text())
    truth = data["images"]
    t0 = time.perf_counter()
    rows = rows_of(args.corpus, truth)
    t1 = time.perf_counter()
    decisions, stats = plan_dedup(rows, spec_of(args.max_hamming))
    t2 = time.perf_counter()
    keys = {r["key"] for r in rows}
    cluster = {k: (d.survivor if d.op else k) for k, d in decisions.items()}
    drops = [(d.key, d.survivor) for d in decisions.values() if d.op]
    m = measure(args.corpus, truth, keys, cluster, drops)
    m.update(images=len(rows), features_s=round(t1 - t0, 1), dedup_s=round(t2 - t1, 1),
             candidate_pairs=stats.near_candidate_pairs,
             same_size_jpeg=same_size_jpeg(args.corpus, truth))  # fmt: skip
    p_cluster, p_drops = phash_only(rows)
    ph = measure(args.corpus, truth, keys, p_cluster, p_drops)
    result = {"corpus": data["summary"], "dedup": m,
              "phash_within_10": {k: v for k, v in ph.items() if k not in ("near_missed", "wrong")}}  # fmt: skip
    for a, b in m["wrong"][: args.show]:
        print("WRONG", describe(truth, a), "->", describe(truth, b))
    for k in m["near_missed"][: args.show]:
        print("MISSED", describe(truth, k))
    short = {k: v for k, v in m.items() if k not in ("near_missed", "wrong")}
    print(json.dumps(short), "\nphash<=10:", json.dumps(result["phash_within_10"]))
    if args.json:
        result["dedup"] = {**short, "wrong": [[describe(truth, a), describe(truth, b)]
                                              for a, b in m["wrong"]]}  # fmt: skip
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

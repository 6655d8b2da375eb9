"""Dedup quality on the corpus kit: exact and near recall and precision per seed, near
recall per planted transform, and what each check of the near rule decides.

For each seed a kit corpus (``--per-category`` images per category, faults 0.3) is generated,
every image fingerprinted as a build does (``image_features``), and deduplicated by the pure
core (``plan_dedup``, default recipe). A planted copy counts as found when it ends in its
original's group; a drop is right when it and its survivor share a planted group.

With ``--checks`` every candidate pair the banding emits is also compared by the rule
without its screens (``NearRule.unscreened``): per check, how many same-picture pairs it is
the first to reject (recall it costs) and how many different-picture pairs (precision it
buys), and on how many pairs the screened rule decides otherwise (the screens' check).

``--markdown docs/DEDUP.md`` rewrites the tables between the ``dedup_quality`` markers there.

Usage: uv run python bench/dedup_quality.py [--seeds 11,23,5,7,13,17,29] [--checks] [--max-hamming K]
        [--json bench/results/dedup_quality.json] [--markdown docs/DEDUP.md]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path


def kit_rows(root: Path, seed: int, per_category: int) -> tuple[list[dict], dict[str, dict]]:
    """A corpus kit as dedup rows (undecodable images left out), and its truth by id."""
    import pyarrow.parquet as pq

    from mindvl.data_engine.ops.image_decode import DecodeFailure, image_features
    from mindvl.data_engine.synth import kit

    kit.generate_corpus(root, per_category, "folder", faults=0.3, seed=seed)
    truth = {r["id"]: r for r in pq.read_table(root / "truth.parquet").to_pylist()}
    rows = []
    for rid, t in truth.items():
        try:
            f = image_features((root / t["path"]).read_bytes())
        except (DecodeFailure, OSError):
            continue
        rows.append(feature_row(rid, f, t["caption"]))
    return rows, truth


def feature_row(key: str, f, caption: str = "") -> dict:
    """A dedup row of one image's ``ImageFeatures``."""
    return {"key": key, "caption": caption, "conversation": None,
            "pixel_hashes": [f.pixel_hash], "phashes": [f.phash],
            "signatures": [f.signature], "information": [f.information],
            "widths": [f.width], "heights": [f.height], "quality": None,
            "meta": "{}", "drop_reason": None}  # fmt: skip


def rates(found: Counter, total: Counter, drops: int, wrong: int) -> dict:
    """Exact and near recall, precision and drop counts of one run."""
    return {
        "exact_recall": round(found["exact"] / max(1, total["exact"]), 4),
        "near_recall": round(found["near"] / max(1, total["near"]), 4),
        "precision": round(1 - wrong / max(1, drops), 4),
        "drops": drops,
        "wrong_drops": wrong,
    }


def same_group(truth: dict, a: str, b: str) -> bool:
    return truth[a]["dup_group"] >= 0 and truth[a]["dup_group"] == truth[b]["dup_group"]


def measure(rows: list[dict], truth: dict[str, dict], decisions: dict) -> dict:
    """Recall (overall, exact, near, per near transform) and precision of one run."""
    present = {r["key"] for r in rows}
    cluster = {k: (d.survivor if d.op else k) for k, d in decisions.items()}
    drops = [d for d in decisions.values() if d.op in ("exact_dedup", "near_dedup")]
    wrong = [d for d in drops if not same_group(truth, d.key, d.survivor)]
    original = {t["dup_group"]: k for k, t in truth.items() if t["dup_kind"] == "original"}
    found, total = Counter(), Counter()
    for k, t in truth.items():
        o = original.get(t["dup_group"])
        if t["dup_group"] < 0 or t["dup_kind"] == "original" or k not in present:
            continue
        if o not in present:
            continue
        kinds = ("exact",) if t["dup_kind"] == "exact" else ("near", t["dup_kind"])
        for kind in kinds:
            total[kind] += 1
            found[kind] += cluster.get(o, o) == cluster.get(k, k)
    return {
        **rates(found, total, len(drops), len(wrong)),
        "n_exact": total["exact"],
        "n_near": total["near"],
        "near_recall_by_transform": {
            k: f"{found[k]}/{total[k]}" for k in sorted(total) if k.startswith("near:")
        },
    }


def spec_of(max_hamming: int | None):
    """The default recipe's dedup, with ``near.max_hamming`` when given."""
    from mindvl.common.recipe import DedupSpec

    return DedupSpec.model_validate({"near": {"max_hamming": max_hamming}} if max_hamming else {})


def check_table(rows: list[dict], truth: dict[str, dict], spec) -> dict:
    """Every candidate pair of the default rule, compared by the rule without its screens:
    per check, the same-picture pairs it is the first to reject (the recall it costs) and
    the different-picture pairs (the precision it buys); and the pairs on which the
    screened rule decides otherwise (must be 0)."""
    import numpy as np
    import pyarrow.compute as pc

    from mindvl.data_engine.dedup import local
    from mindvl.data_engine.dedup.batch import screen_pairs
    from mindvl.data_engine.dedup.candidates import scheme_for
    from mindvl.data_engine.dedup.compare import PairVerifier
    from mindvl.data_engine.dedup.groups import label_key
    from mindvl.data_engine.dedup.rule import NearRule

    rule = NearRule.from_spec(spec.near)
    items = local.table_of(local.exact_items(rows, spec, rule))
    sig_of = local.signature_index(items)
    scheme = scheme_for(rule, len(sig_of))
    buckets = local.buckets_of(local.band_rows(items, scheme), scheme, rule)
    labels = sorted(sig_of)
    at = {label: i for i, label in enumerate(labels)}
    left, right = (np.array([at[x] for x in pc.list_flatten(buckets[c]).to_pylist()], dtype=np.int64)
                   for c in ("a", "b"))  # fmt: skip
    distance = pc.list_flatten(buckets["distance"]).to_numpy()
    sigs, keys = [sig_of[label] for label in labels], [label_key(label) for label in labels]
    screened = screen_pairs(sigs, left, right, distance, rule)
    full, fast = PairVerifier(rule.unscreened()), PairVerifier(rule)
    table: dict[str, Counter] = {}
    changed = 0
    for p, (a, b) in enumerate(zip(left.tolist(), right.tolist(), strict=True)):
        d = int(distance[p])
        check = full.check(sigs[a], sigs[b], d)
        same = same_group(truth, keys[a], keys[b])
        table.setdefault(check or "accepted", Counter())["same" if same else "different"] += 1
        changed += (check is None) != bool(screened[p] and fast.agree(sigs[a], sigs[b], d))
    return {
        "candidate_pairs": int(left.size),
        "first_rejecting_check": {k: dict(v) for k, v in sorted(table.items())},
        "screens_changed_decisions": changed,
    }


START, END = "<!-- dedup_quality:start -->", "<!-- dedup_quality:end -->"


def markdown(results: dict) -> str:
    """Per seed, then (with ``--checks``) per check, as markdown tables."""
    lines = [
        "| kit seed | exact recall | near recall | precision | wrong drops | near copies |",
        "|---|---|---|---|---|---|",
    ]
    for seed, m in results.items():
        lines.append(f"| {seed} | {m['exact_recall']:.3f} | {m['near_recall']:.3f} | "
                     f"{m['precision']:.3f} | {m['wrong_drops']} | {m['n_near']} |")  # fmt: skip
    checked = {seed: m["checks"] for seed, m in results.items() if "checks" in m}
    if checked:
        names = sorted({c for m in checked.values() for c in m["first_rejecting_check"]})
        lines += ["", "Candidate pairs by the first check that rejects them (rule without its "
                  "screens), same picture / different pictures:", "",
                  "| kit seed | pairs | " + " | ".join(names) + " | screens changed |",
                  "|---" * (len(names) + 3) + "|"]  # fmt: skip
        for seed, m in checked.items():
            cells = []
            for name in names:
                c = m["first_rejecting_check"].get(name, {})
                cells.append(f"{c.get('same', 0)} / {c.get('different', 0)}")
            lines.append(f"| {seed} | {m['candidate_pairs']} | " + " | ".join(cells) +
                         f" | {m['screens_changed_decisions']} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="11,23,5,7,13,17,29")
    parser.add_argument("--per-category", type=int, default=400)
    parser.add_argument("--checks", action="store_true", help="per-check table (slower)")
    parser.add_argument("--max-hamming", type=int, default=None, help="near.max_hamming")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--markdown", type=Path, default=None, help="rewrite its tables")
    args = parser.parse_args()

    from mindvl.data_engine.dedup import plan_dedup

    results = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        with tempfile.TemporaryDirectory(prefix="dedup_quality") as tmp:
            t0 = time.perf_counter()
            rows, truth = kit_rows(Path(tmp) / "kit", seed, args.per_category)
            t1 = time.perf_counter()
            decisions, _ = plan_dedup(rows, spec_of(args.max_hamming))
            t2 = time.perf_counter()
            m = measure(rows, truth, decisions)
            m["kit_and_features_s"], m["dedup_s"] = round(t1 - t0, 1), round(t2 - t1, 1)
            if args.checks:
                m["checks"] = check_table(rows, truth, spec_of(args.max_hamming))
        results[str(seed)] = m
        print(f"seed {seed}: " + json.dumps(m), flush=True)
    near = [m["near_recall"] for m in results.values()]
    print(f"near recall min {min(near):.4f}, precision min "
          f"{min(m['precision'] for m in results.values()):.4f}, exact recall min "
          f"{min(m['exact_recall'] for m in results.values()):.4f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    if args.markdown:
        text = args.markdown.read_text()
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        args.markdown.write_text(f"{head}{START}\n{markdown(results)}\n{END}{tail}")


if __name__ == "__main__":
    main()

"""Near-duplicate grouping of synthetic 64-bit pHashes: wall time and peak memory per size.

Each run: n random hashes, 10 % of them planted neighbours (a copy of another hash with
1..k bits flipped); then the local runner's banding and buckets (``local.buckets_of``: one
``BANDS`` row per hash and band, sorted by band key, every bucket of two or more rows paired
in one vectorised pass, with the Hamming check; every hash its image's only key, no
crowding) and
connected components (``groups.components``: scipy's connected_components). Every size runs
in a fresh subprocess so its peak RSS is its own.

Two bandings (``dedup/candidates.py``):
- ``exact``: k + 1 bands (pigeonhole, recall 1). Random band collisions grow as
  (k + 1) * n^2 / 2^(64 / (k + 1) + 1), so the cost is near-linear only while that stays
  below ~n. Sizes whose estimate exceeds ``--max-collisions`` are reported with the
  estimate instead of being run.
- ``sampled``: bit-sampling LSH, ceil(log2 n)-bit tables, as many as a pair at distance k
  needs to be found with probability ``--recall``. Reported: the planted neighbours
  within k that ended in their source's group (recall), overall and at distance exactly k.

Growth is read against a reference measured in the same process: one numpy sort of the n
hashes (``sort_reference_s``). ``wall_over_bands_x_sort`` stays flat when the work per
band grows like a sort (n log n, including this machine's cache effects).

    uv run python bench/dedup_grouping.py [--sizes 10000,100000] [--k 2,6]
        [--index exact,sampled] [--recall 0.99]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "results" / "dedup_grouping.json"
sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "data_engine"))


def planted(n: int, k: int, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    m = n // 10
    dst = rng.choice(n, m, replace=False)
    src = rng.integers(0, n, m)
    masks = np.zeros(m, dtype=np.uint64)
    flips = rng.integers(1, max(k, 1) + 1, m)
    for f in range(1, max(k, 1) + 1):
        sel = np.flatnonzero(flips >= f)
        masks[sel] |= np.uint64(1) << rng.integers(0, 64, sel.size).astype(np.uint64)
    h[dst] = h[src] ^ masks
    return h, dst, src


def expected_collisions(n: int, k: int) -> float:
    from mindvl.data_engine.dedup.candidates import exact_collisions

    return exact_collisions(n, k)


def run_one(n: int, k: int, seed: int, index: str, recall: float) -> dict:
    import numpy as np
    from dedup_helpers import hash_pairs

    from mindvl.data_engine.dedup.candidates import BandScheme, hamming
    from mindvl.data_engine.dedup.groups import components as component_labels
    from mindvl.data_engine.dedup.rule import NearRule

    h, dst, src = planted(n, k, seed)
    t0 = time.perf_counter()
    scheme = BandScheme.sampled(k, n, recall) if index == "sampled" else BandScheme.exact(k)
    left, right, _, _ = hash_pairs(h, scheme, NearRule(max_hamming=k, crowded_bucket=0))
    t1 = time.perf_counter()
    labels = component_labels(n, left, right)
    t2 = time.perf_counter()
    ref = np.sort(h)  # reference in the same process: one sort of the n hashes
    t3 = time.perf_counter()
    del ref
    # every planted neighbour within k (and not a self-copy) must share its source's group
    dist = hamming(h[dst], h[src])
    within = (dist <= k) & (dst != src)
    apart = labels[dst] != labels[src]
    missed = int(np.count_nonzero(apart & within))
    at_k = within & (dist == k)
    groups = int(np.count_nonzero(np.bincount(labels, minlength=n) > 1))
    _, bucket_sizes = np.unique(scheme.keys(h), return_counts=True)
    return {
        "n": n,
        "max_hamming": k,
        "index": index,
        "bands": scheme.n_bands,
        "band_bits": scheme.width or None,
        "expected_recall_at_k": round(scheme.expected_recall(), 4),
        "band_collisions": int((bucket_sizes * (bucket_sizes - 1) // 2).sum()),
        "expected_random_collisions": round(expected_collisions(n, k))
        if index == "exact"
        else round(scheme.n_bands * n * (n - 1) / 2 / 2.0**scheme.width),
        "pairs_within_k": int(left.size),
        "groups": groups,
        "planted_within_k": int(within.sum()),
        "planted_missed": missed,
        "planted_recall": round(1 - missed / max(int(within.sum()), 1), 4),
        "planted_at_k": int(at_k.sum()),
        "planted_recall_at_k": round(
            1 - int(np.count_nonzero(apart & at_k)) / max(int(at_k.sum()), 1), 4
        ),
        "pairs_s": round(t1 - t0, 3),
        "components_s": round(t2 - t1, 3),
        "wall_s": round(t2 - t0, 3),
        "us_per_hash": round((t2 - t0) / n * 1e6, 2),
        "sort_reference_s": round(t3 - t2, 4),
        "wall_over_bands_x_sort": round((t2 - t0) / scheme.n_bands / (t3 - t2), 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--k", default="2,6", help="max_hamming values")
    ap.add_argument("--index", default="exact,sampled", help="bandings to run")
    ap.add_argument("--recall", type=float, default=0.99, help="sampled: target at distance k")
    ap.add_argument("--max-collisions", type=float, default=3e8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT, help="results JSON")
    ap.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        n, k, index = int(args.one[0]), int(args.one[1]), args.one[2]
        print(json.dumps(run_one(n, k, args.seed, index, args.recall)))
        return
    results = []
    for index, k, n in (
        (i, int(k), int(n))
        for i in args.index.split(",")
        for k in args.k.split(",")
        for n in args.sizes.split(",")
    ):
        if index == "sampled" and k <= 2:
            continue  # exact banding is already near-linear there
        est = expected_collisions(n, k)
        if index == "exact" and est > args.max_collisions:
            row = {"n": n, "max_hamming": k, "index": index, "bands": k + 1, "skipped": True,
                   "expected_random_collisions": round(est),
                   "why": f"estimated {est:.2g} random band collisions > {args.max_collisions:.2g}"}  # fmt: skip
        else:
            cmd = [sys.executable, __file__, "--one", str(n), str(k), index,
                   "--seed", str(args.seed), "--recall", str(args.recall)]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        results.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "dedup_grouping",
                "machine": {
                    "python": platform.python_version(),
                    "cpus": __import__("os").cpu_count(),
                },
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

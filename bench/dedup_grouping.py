"""Near-duplicate grouping of synthetic 64-bit pHashes: wall time and peak memory per size.

Each run: n random hashes, 10 % of them planted neighbours (a copy of another hash with
1..k bits flipped); then LSH banding into k + 1 bands (numpy, sort-based), Hamming check,
and connected components (numpy min-label propagation). Every size runs in a fresh
subprocess so its peak RSS is its own.

Random band collisions grow as (k + 1) * n^2 / 2^(64 / (k + 1) + 1): with k + 1 bands the
cost is near-linear only while that stays below ~n. Sizes whose estimate exceeds
``--max-collisions`` are reported with the estimate instead of being run.

    uv run python bench/dedup_grouping.py [--sizes 100000,1000000,10000000] [--k 2,6]
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
    from mindvl.data_engine.dedup.bits import band_layout

    return sum(n * (n - 1) / 2 / 2.0**w for _, w in band_layout(k + 1))


def run_one(n: int, k: int, seed: int) -> dict:
    import numpy as np

    from mindvl.data_engine.dedup.bits import hamming
    from mindvl.data_engine.dedup.components import component_labels
    from mindvl.data_engine.dedup.lsh import candidate_pairs

    h, dst, src = planted(n, k, seed)
    t0 = time.perf_counter()
    pairs = candidate_pairs(h, k)
    t1 = time.perf_counter()
    labels = component_labels(n, pairs.left, pairs.right)
    t2 = time.perf_counter()
    # every planted neighbour within k (and not a self-copy) must share its source's group
    within = (hamming(h[dst], h[src]) <= k) & (dst != src)
    missed = int(np.count_nonzero(labels[dst[within]] != labels[src[within]]))
    groups = int(np.count_nonzero(np.bincount(labels, minlength=n) > 1))
    return {
        "n": n,
        "max_hamming": k,
        "bands": k + 1,
        "band_collisions": int(pairs.band_collisions),
        "expected_random_collisions": round(expected_collisions(n, k)),
        "pairs_within_k": int(pairs.left.size),
        "groups": groups,
        "planted_within_k": int(within.sum()),
        "planted_missed": missed,
        "pairs_s": round(t1 - t0, 3),
        "components_s": round(t2 - t1, 3),
        "wall_s": round(t2 - t0, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000,10000000")
    ap.add_argument("--k", default="2,6", help="max_hamming values")
    ap.add_argument("--max-collisions", type=float, default=3e8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.seed)))
        return
    results = []
    for k in (int(x) for x in args.k.split(",")):
        for n in (int(x) for x in args.sizes.split(",")):
            est = expected_collisions(n, k)
            if est > args.max_collisions:
                row = {"n": n, "max_hamming": k, "bands": k + 1, "skipped": True,
                       "expected_random_collisions": round(est),
                       "why": f"estimated {est:.2g} random band collisions > {args.max_collisions:.2g}"}  # fmt: skip
            else:
                cmd = [sys.executable, __file__, "--one", str(n), str(k), "--seed", str(args.seed)]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
                row = json.loads(proc.stdout.strip().splitlines()[-1])
            print(json.dumps(row), flush=True)
            results.append(row)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
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
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

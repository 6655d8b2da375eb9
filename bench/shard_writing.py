"""Shard writing throughput: the mix shard writer vs a plain ``tarfile`` copy of the same bytes.

Both write the same members (a JSON record and one ~image-sized blob per sample) into
shards of the same size, in the same run, to the same disk. The mix writer also fsyncs and
renames each shard and hashes every byte (sha256) for the manifest; the baseline does none
of that. Also times ``write_stage`` end to end (staging Parquet read, token counting,
selection, shards, index, manifest, report). Writes ``bench/results/shard_writing.json``.

    uv run python bench/shard_writing.py [--samples 1000] [--kib 128]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from mindvl.data_engine.mix.shard_writer import Member, plan_shards, write_shards


def members(n: int, kib: int) -> list[list[tuple[str, bytes]]]:
    out = []
    for i in range(n):
        key = f"bench-src-{i:08d}_{hashlib.sha256(str(i).encode()).hexdigest()[:12]}"
        blob = os.urandom(kib * 1024 - 97 + (i % 193))
        record = json.dumps({"key": key, "caption": "x" * 80}).encode()
        out.append([(f"{key}.json", record), (f"{key}.img0.bin", blob)])
    return out


def mix_writer(d: Path, data, max_bytes: int) -> float:
    plan = plan_shards(
        "bench",
        [[Member(n, len(b), hashlib.sha256(b).hexdigest()) for n, b in ms] for ms in data],
        10**9,
        max_bytes,
    )
    (d / ".mix-journal.jsonl").unlink(missing_ok=True)
    t = time.perf_counter()
    write_shards(d, "bench", plan, lambda i: iter(data[i]))
    return time.perf_counter() - t


def tarfile_copy(d: Path, data, max_bytes: int) -> float:
    t = time.perf_counter()
    shard, size, tf = 0, 0, None
    for ms in data:
        need = sum(len(b) + 1024 for _, b in ms)
        if tf is None or size + need > max_bytes:
            if tf is not None:
                tf.close()
            tf = tarfile.open(d / f"plain-{shard:06d}.tar", "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
            shard, size = shard + 1, 0
        for name, b in ms:
            info = tarfile.TarInfo(name)
            info.size = len(b)
            tf.addfile(info, io.BytesIO(b))
        size += need
    if tf is not None:
        tf.close()
    return time.perf_counter() - t


def write_stage_e2e(n: int) -> dict:
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests" / "data_engine"))
    from mixkit_helpers import make_candidates, make_recipe, make_tokenizer, write_staging

    from mindvl.data_engine.accounting import BuildAccounting
    from mindvl.data_engine.mix import write_stage

    root = Path(tempfile.mkdtemp(prefix="mixbench"))
    try:
        tok = make_tokenizer(root / "tok")
        cands = make_candidates({("a", "caption"): n // 2, ("c", "ocr"): n // 2})
        staging = write_staging(root / "st", cands, n_files=8)
        mixture = {"budget": n, "targets": {"caption": 0.5, "ocr": 0.5}}
        recipe, record = make_recipe(tok, [("a", "caption"), ("c", "ocr")], mixture)
        t = time.perf_counter()
        m = write_stage(staging, recipe, record, root / "out", BuildAccounting())
        wall = time.perf_counter() - t
        return {
            "samples": m.total_samples,
            "wall_s": round(wall, 3),
            "samples_per_s": round(m.total_samples / wall, 1),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--kib", type=int, default=128)
    ap.add_argument("--shard-mib", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--e2e-samples", type=int, default=2000)
    args = ap.parse_args()
    data = members(args.samples, args.kib)
    total = sum(len(b) for ms in data for _, b in ms)
    max_bytes = args.shard_mib << 20
    runs = {"mix_writer": [], "tarfile_copy": []}
    with tempfile.TemporaryDirectory(prefix="shardbench", dir=Path(__file__).parent) as tmp:
        for _ in range(args.repeats):
            for name, fn in (("mix_writer", mix_writer), ("tarfile_copy", tarfile_copy)):
                d = Path(tmp) / name
                shutil.rmtree(d, ignore_errors=True)
                d.mkdir()
                runs[name].append(fn(d, data, max_bytes))
    best = {k: min(v) for k, v in runs.items()}
    result = {
        "payload_mib": round(total / 2**20, 1),
        "samples": args.samples,
        "shard_mib": args.shard_mib,
        "repeats": args.repeats,
        "mix_writer_mib_s": round(total / 2**20 / best["mix_writer"], 1),
        "tarfile_copy_mib_s": round(total / 2**20 / best["tarfile_copy"], 1),
        "mix_vs_tarfile": round(best["tarfile_copy"] / best["mix_writer"], 3),
        "runs_s": {k: [round(x, 3) for x in v] for k, v in runs.items()},
        "note": "mix writer also sha256-hashes every byte, fsyncs and renames each shard; best of repeats",
        "write_stage_end_to_end": write_stage_e2e(args.e2e_samples),
        "cpu_count": os.cpu_count(),
    }
    out = Path(__file__).parent / "results" / "shard_writing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

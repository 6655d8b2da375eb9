"""Check that a mix build directory loads in Megatron-Energon, and time it.

Run with an interpreter that has ``megatron-energon`` (not a mindvl dependency), e.g.::

    uv venv /tmp/energon && uv pip install --python /tmp/energon megatron-energon
    /tmp/energon/bin/python bench/energon_read_check.py BUILD_DIR

It runs the documented preparation (``energon prepare BUILD_DIR --non-interactive
--split-ratio 1,0,0 --sample-type CrudeWebdataset --num-workers 1 --force-overwrite
--no-progress``), which writes ``BUILD_DIR/.nv-meta/`` and one ``.tar.idx`` per shard, then
reads every sample through ``get_train_dataset`` with a cooker that parses the mindvl
sample JSON, and writes ``bench/results/energon_read_check.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PREPARE = [
    "prepare",
    "--non-interactive",
    "--split-ratio",
    "1,0,0",
    "--sample-type",
    "CrudeWebdataset",
    "--num-workers",
    "1",
    "--force-overwrite",
    "--no-progress",
]


def main(build: Path) -> dict:
    from megatron.energon import (
        Cooker,
        DefaultTaskEncoder,
        Sample,
        WorkerConfig,
        basic_sample_keys,
        get_loader,
        get_train_dataset,
        stateless,
    )

    energon = Path(sys.executable).with_name("energon")
    t0 = time.perf_counter()
    subprocess.run(
        [str(energon), PREPARE[0], str(build), *PREPARE[1:]], check=True, capture_output=True
    )
    prepare_s = time.perf_counter() - t0

    @dataclass
    class MindvlSample(Sample):
        record: dict
        images: list

    @stateless
    def cook(crude: dict) -> MindvlSample:
        raw = crude["json"]
        record = raw if isinstance(raw, dict) else json.loads(raw)
        images = [crude[im["member"]] for im in record.get("images", [])]
        return MindvlSample(**basic_sample_keys(crude), record=record, images=images)

    class Encoder(DefaultTaskEncoder):
        cookers = [Cooker(cook)]

        def batch(self, samples):
            return samples

    wc = WorkerConfig(rank=0, world_size=1, num_workers=0)
    ds = get_train_dataset(
        str(build),
        batch_size=None,
        shuffle_buffer_size=None,
        max_samples_per_sequence=None,
        worker_config=wc,
        task_encoder=Encoder(),
        repeat=False,
    )
    t1 = time.perf_counter()
    keys = [s.record["key"] for s in get_loader(ds)]
    read_s = time.perf_counter() - t1
    manifest = json.loads((build / "manifest.json").read_text())
    return {
        "build": build.name,
        "prepare_cmd": "energon " + " ".join([PREPARE[0], "BUILD_DIR", *PREPARE[1:]]),
        "prepare_s": round(prepare_s, 2),
        "read_s": round(read_s, 2),
        "samples_read": len(keys),
        "unique_keys": len(set(keys)),
        "manifest_samples": manifest["total_samples"],
        "ok": sorted(keys) == sorted(set(keys)) and len(keys) == manifest["total_samples"],
    }


if __name__ == "__main__":
    result = main(Path(sys.argv[1]))
    out = Path(__file__).parent / "results" / "energon_read_check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["ok"] else 1)

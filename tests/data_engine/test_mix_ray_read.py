"""Shards written by write_stage read back through Ray Data's WebDataset reader
(tests/pipeline/test_shards_every_reader.py reads the same kind of build with the others)."""

from __future__ import annotations

import hashlib
import tempfile

import pyarrow.parquet as pq
from mixkit_helpers import write_mixed_build


def test_ray_read_webdataset_default_decoder_reads_every_sample(tmp_path, monkeypatch):
    """Ray Data's default decoder over a build of jpg, png and text-only samples: every row
    has the same columns, the JSON decoded and the image bytes as written."""
    import ray

    out = write_mixed_build(tmp_path)
    index = pq.read_table(out / "index.parquet").column("key").to_pylist()
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    start_local_ray(ray)
    try:
        rows = ray.data.read_webdataset(str(out), file_extensions=["tar"]).take_all()
    finally:
        ray.shutdown()
    assert sorted(r["__key__"] for r in rows) == sorted(index) and len(rows) == 20
    for r in rows:
        images = r["json"]["images"]
        assert isinstance(r["img0.bin"], bytes)
        if images:
            assert hashlib.sha256(r["img0.bin"]).hexdigest() == images[0]["sha256"]
        else:
            assert r["img0.bin"] == b""
    assert {im["format"] for r in rows for im in r["json"]["images"]} == {"jpg", "png"}


def start_local_ray(ray, attempts: int = 2) -> None:
    """Ray gives its raylet a fixed 30 s to register; on a heavily shared 2-core machine
    that can run out, so a timed-out start is retried once."""
    for attempt in range(attempts):
        try:
            ray.init(
                num_cpus=2,
                include_dashboard=False,
                _temp_dir=tempfile.mkdtemp(prefix="ray", dir="/tmp"),
                log_to_driver=False,
            )
            return
        except Exception as err:
            ray.shutdown()
            if "timed out during startup" not in str(err) or attempt == attempts - 1:
                raise

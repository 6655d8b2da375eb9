"""Shards written by write_stage read back through Ray Data's WebDataset reader
(tests/pipeline/test_shards_every_reader.py reads the same kind of build with the others)."""

from __future__ import annotations

import hashlib

import pyarrow.parquet as pq
from mixkit_helpers import write_mixed_build


def test_ray_read_webdataset_default_decoder_reads_every_sample(ray_local, tmp_path):
    """Ray Data's default decoder over a build of jpg, png and text-only samples: every row
    has the same columns, the JSON decoded and the image bytes as written."""
    out = write_mixed_build(tmp_path)
    index = pq.read_table(out / "index.parquet").column("key").to_pylist()
    rows = ray_local.data.read_webdataset(str(out), file_extensions=["tar"]).take_all()
    assert sorted(r["__key__"] for r in rows) == sorted(index) and len(rows) == 20
    for r in rows:
        images = r["json"]["images"]
        assert isinstance(r["img0.bin"], bytes)
        if images:
            assert hashlib.sha256(r["img0.bin"]).hexdigest() == images[0]["sha256"]
        else:
            assert r["img0.bin"] == b""
    assert {im["format"] for r in rows for im in r["json"]["images"]} == {"jpg", "png"}

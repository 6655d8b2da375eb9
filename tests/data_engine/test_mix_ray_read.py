"""Shards written by write_stage read back through Ray Data's WebDataset reader."""

from __future__ import annotations

import tempfile

import pyarrow.parquet as pq
from mixkit_helpers import make_candidates, make_recipe, make_tokenizer, write_staging

from mindvl.data_engine.accounting import BuildAccounting
from mindvl.data_engine.mix import write_stage


def test_ray_read_webdataset_sees_every_sample_as_raw_bytes(tmp_path, monkeypatch):
    import ray

    tok = make_tokenizer(tmp_path / "tok")
    cands = make_candidates({("a", "caption"): 12, ("c", "ocr"): 10})
    staging = write_staging(tmp_path / "st", cands)
    mixture = {"budget": 20, "targets": {"caption": 0.5, "ocr": 0.5}}
    recipe, record = make_recipe(
        tok, [("a", "caption"), ("c", "ocr")], mixture, shards={"max_samples": 8}
    )
    m = write_stage(staging, recipe, record, tmp_path / "out", BuildAccounting())
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    start_local_ray(ray)
    try:
        ds = ray.data.read_webdataset(str(tmp_path / "out"), decoder=None, file_extensions=["tar"])
        rows = ds.take_all()
    finally:
        ray.shutdown()
    index = pq.read_table(tmp_path / "out" / "index.parquet").column("key").to_pylist()
    assert sorted(r["__key__"] for r in rows) == sorted(index)
    assert len(rows) == m.total_samples == 20
    assert all(isinstance(r["json"], bytes) for r in rows)
    assert all(any(k.startswith("img0.") and isinstance(r[k], bytes) for k in r) for r in rows)


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

"""One build, read unchanged by webdataset, HF ``datasets`` (plain and streaming) and the
trainer: every sample has the same members (``json``, ``img0.bin``), whatever its image
format, text-only samples included. Ray Data's ``read_webdataset`` with its default
decoder reads the same kind of build in tests/data_engine/test_mix_ray_read.py."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "data_engine"))
from mixkit_helpers import write_mixed_build  # noqa: E402

from mindvl.common.sample import Sample  # noqa: E402


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = write_mixed_build(tmp_path_factory.mktemp("readers"))
    samples = {}
    for shard in sorted(out.glob("*.tar")):
        import webdataset as wds

        for rec in wds.WebDataset(str(shard), shardshuffle=False):  # plain webdataset
            assert set(rec) - {"__key__", "__url__", "__local_path__"} == {"json", "img0.bin"}
            samples[rec["__key__"]] = (Sample.from_json_bytes(rec["json"]), rec["img0.bin"])
    formats = {im.format for s, _ in samples.values() for im in s.images}
    assert formats == {"jpg", "png"} and any(not s.images for s, _ in samples.values())
    return out, samples


def _check(samples, key, image: bytes | None):
    sample, data = samples[key]
    assert (image or b"") == data
    if sample.images:
        assert hashlib.sha256(image).hexdigest() == sample.images[0].sha256
    else:
        assert not image


@pytest.mark.parametrize("streaming", [False, True])
def test_hf_datasets_loads_the_build(build, streaming):
    from datasets import load_dataset

    out, samples = build
    files = sorted(str(p) for p in out.glob("*.tar"))
    ds = load_dataset("webdataset", data_files={"train": files}, split="train",
                      streaming=streaming)  # fmt: skip
    rows = list(ds)
    assert len(rows) == len(samples)
    for r in rows:
        _check(samples, r["__key__"], r["img0.bin"])
        assert r["json"]["key"] == r["__key__"]


def test_trainer_reads_the_build(build):
    from mindvl.common.manifest import MANIFEST_NAME, RatioManifest
    from mindvl.trainer.data.shards import check_shards, iter_groups

    out, samples = build
    manifest = RatioManifest.load(out / MANIFEST_NAME)
    check_shards(manifest, out)  # what `manifest verify` checks too
    seen = 0
    for i, shard in enumerate(manifest.shards):
        for raw, _ in iter_groups(out / shard.name, i):
            sample = Sample.from_json_bytes(raw.members["json"])
            _check(
                samples, raw.key, raw.members[sample.images[0].member] if sample.images else None
            )
            seen += 1
    assert seen == len(samples)

import json

import pytest

from mindvl.common.errors import UserError
from mindvl.common.manifest import (
    DedupStats,
    MixtureRecord,
    RatioManifest,
    RecipeRecord,
    ShardRecord,
    TokenizerRecord,
    sha256_file,
    verify_shards,
)
from mindvl.common.tokens import ImageTokenRule


def make_manifest(shards):
    return RatioManifest(
        name="r",
        stage="warmup",
        code_version="0.1.0",
        seed=1,
        recipe=RecipeRecord(text="name: r\n", digest="d"),
        tokenizer=TokenizerRecord(path="t", digest="x"),
        image_tokens=ImageTokenRule(),
        inputs=[],
        sources=[],
        funnel=[],
        dedup=DedupStats(),
        mixture=MixtureRecord(
            unit="samples", budget=2, max_repeat=1.0, shortfall="fail", categories=[]
        ),
        shards=shards,
        total_samples=2,
        total_image_tokens=0,
        total_text_tokens=0,
        selected_keys_digest="k",
    )


def test_save_load_round_trip_is_byte_stable(tmp_path):
    m = make_manifest([])
    p = m.save(tmp_path / "manifest.json")
    assert RatioManifest.load(tmp_path) == m
    first = p.read_bytes()
    RatioManifest.load(p).save(p)
    assert p.read_bytes() == first


def test_schema_version_is_checked(tmp_path):
    p = make_manifest([]).save(tmp_path / "manifest.json")
    data = json.loads(p.read_text())
    data["schema_version"] = 99
    p.write_text(json.dumps(data))
    with pytest.raises(UserError, match="schema_version 99 is not supported"):
        RatioManifest.load(p)
    p.write_text("{not json")
    with pytest.raises(UserError, match="not a JSON manifest"):
        RatioManifest.load(p)


def test_verify_shards_names_missing_mismatched_and_extra(tmp_path):
    a = tmp_path / "warmup-000000.tar"
    a.write_bytes(b"a" * 10)
    b = tmp_path / "warmup-000001.tar"
    b.write_bytes(b"b" * 10)
    m = make_manifest(
        [
            ShardRecord(name=a.name, bytes=10, samples=1, sha256=sha256_file(a)),
            ShardRecord(name=b.name, bytes=10, samples=1, sha256=sha256_file(b)),
        ]
    )
    assert verify_shards(m, tmp_path) == []
    b.write_bytes(b"c" * 10)
    (tmp_path / "warmup-000002.tar").write_bytes(b"")
    a.unlink()
    problems = verify_shards(m, tmp_path)
    assert problems == [
        "missing shard warmup-000000.tar",
        "mismatched shard warmup-000001.tar (sha256 differs from the manifest)",
        "extra shard warmup-000002.tar (not in the manifest)",
    ]

"""write_stage end to end on real staging Parquet files, tar shards and a trained tokenizer."""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mixkit_helpers import make_candidates, make_recipe, make_tokenizer, write_staging

from mindvl.common.errors import UserError
from mindvl.common.manifest import (
    REJECTS_COLUMNS,
    FunnelEntry,
    RatioManifest,
    SourceFunnel,
    verify_shards,
)
from mindvl.common.sample import Sample
from mindvl.data_engine.accounting import BuildAccounting
from mindvl.data_engine.mix import write_stage

SOURCES = [("a", "caption"), ("b", "caption"), ("c", "ocr")]
COUNTS = {("a", "caption"): 30, ("b", "caption"): 20, ("c", "ocr"): 25}
MIX = {"budget": 70, "targets": {"caption": 0.6, "ocr": 0.4}, "max_repeat": 2}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    tok = make_tokenizer(root / "tok")
    cands = make_candidates(COUNTS)
    cands[0].meta["caption_provenance"] = {
        "model_id": "tiny",
        "weights_digest": "w" * 8,
        "prompt_digest": "p" * 8,
        "generation": {"max_new_tokens": 8},
        "policy": "replace",
        "original": "old caption",
    }
    return root, tok, cands


REJECTS_SCHEMA = pa.schema([(c, pa.string()) for c in REJECTS_COLUMNS])


def build(world, name, mixture=MIX, n_files=3, shuffle=0, acc=None, **shards):
    root, tok, cands = world
    staging = write_staging(root / f"st-{name}", cands, n_files=n_files, shuffle=shuffle)
    recipe, record = make_recipe(tok, SOURCES, mixture, shards=shards or {"max_samples": 16})
    out = root / f"out-{name}"
    m = write_stage(staging, recipe, record, out, acc or BuildAccounting())
    return m, out


def files(d: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(d.iterdir())
        if p.is_file() and not p.name.startswith(".")
    }


def test_same_inputs_give_byte_identical_outputs_whatever_the_partitioning(world):
    m1, out1 = build(world, "p1", n_files=1, shuffle=0)
    m2, out2 = build(world, "p2", n_files=7, shuffle=3)
    f1, f2 = files(out1), files(out2)
    assert sorted(f1) == ["index.parquet", "manifest.json", "rejects.parquet", "report.html"] + [
        f"s1-{i:06d}.tar" for i in range(5)
    ]
    assert f1 == f2
    assert m1 == m2 and verify_shards(m1, out1) == []
    # 70 samples: 42 caption (50 available) + 28 ocr (25 available -> 3 repeats)
    cats = {c.category: c for c in m1.mixture.categories}
    assert (cats["caption"].samples, cats["ocr"].samples, cats["ocr"].repeats) == (42, 28, 3)
    assert cats["ocr"].achieved_fraction_samples == pytest.approx(0.4)
    # the 8 captions no pick used are listed with their reason, none of them in a shard
    rejects = pq.read_table(out1 / "rejects.parquet").to_pylist()
    assert len(rejects) == 8 == sum(e.count for e in m1.funnel if e.reason == "not_selected")
    assert {(r["stage"], r["op"], r["reason"]) for r in rejects} == {
        ("mix", "mixture", "not_selected")
    }
    shard_keys = set(pq.read_table(out1 / "index.parquet").column("key").to_pylist())
    assert not shard_keys & {r["key"] for r in rejects}


def test_shards_respect_limits_fixed_members_and_read_back(world):
    import webdataset as wds

    m, out = build(world, "limits", max_samples=10, max_bytes=20_000)
    assert len(m.shards) > 7
    for s in m.shards:
        assert s.samples <= 10 and s.bytes <= 20_000
        assert (out / s.name).stat().st_size == s.bytes
        assert hashlib.sha256((out / s.name).read_bytes()).hexdigest() == s.sha256
    with tarfile.open(out / m.shards[0].name) as tf:
        infos = tf.getmembers()
    assert all(
        (i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) == (0, 0, 0, "", "", 0o644) for i in infos
    )
    assert infos[0].name.endswith(".json") and ".img0." in infos[1].name
    index = pq.read_table(out / "index.parquet").to_pylist()
    # Every full shard carries close to the stage's 60/40 mixture.
    for s in m.shards:
        cats = [r["category"] for r in index if r["shard"] == s.name]
        assert len(cats) == s.samples
        if s.samples >= 8:
            assert abs(cats.count("ocr") - 0.4 * s.samples) <= 1.5, (s.name, cats)
    urls = [str(out / s.name) for s in m.shards]
    seen = []
    for row in wds.WebDataset(urls, shardshuffle=False):
        sample = Sample.from_json_bytes(row["json"])
        assert sample.key == row["__key__"]
        (img,) = sample.images
        assert hashlib.sha256(row[img.member]).hexdigest() == img.sha256
        seen.append(sample.key)
    assert seen == [r["key"] for r in index]
    assert len(seen) == m.total_samples == 70


def test_funnel_accounts_for_every_input_and_index_records_repeats(world):
    acc = BuildAccounting(
        sources=[
            SourceFunnel(source="a", category="caption", input=34, kept=30, dropped=4),
            SourceFunnel(source="b", category="caption", input=20, kept=20, dropped=0),
            SourceFunnel(source="c", category="ocr", input=27, kept=25, dropped=2),
        ],
        funnel=[
            FunnelEntry(source="a", stage="filter", op="image_size", reason="too_small", count=4),
            FunnelEntry(source="c", stage="dedup", op="exact", reason="duplicate", count=2),
        ],
    )
    m, out = build(world, "funnel", acc=acc)
    for s in m.sources:
        drops = sum(f.count for f in m.funnel if f.source == s.source)
        assert s.input == s.kept + s.dropped == s.kept + drops
    not_sel = {f.source: f.count for f in m.funnel if f.stage == "mix"}
    assert all(
        f.op == "mixture" and f.reason == "not_selected" for f in m.funnel if f.stage == "mix"
    )
    assert sum(not_sel.values()) == 75 - sum(c.selected_unique for c in m.mixture.categories)
    assert [f.stage for f in m.funnel if f.source == "a"] == ["filter", "mix"]
    index = pq.read_table(out / "index.parquet")
    assert index.column_names == [
        "key",
        "origin_key",
        "source",
        "category",
        "shard",
        "image_tokens",
        "text_tokens",
        "phash",
        "caption_provenance",
    ]
    rows = index.to_pylist()
    repeats = [r for r in rows if r["origin_key"]]
    assert len(repeats) == 3 and all(r["key"] == f"{r['origin_key']}-r1" for r in repeats)
    assert {r["origin_key"] for r in repeats} <= {r["key"] for r in rows}
    prov = [json.loads(r["caption_provenance"]) for r in rows if r["caption_provenance"]]
    assert prov and prov[0]["original"] == "old caption"
    assert (
        sum(r["image_tokens"] + r["text_tokens"] for r in rows)
        == m.total_image_tokens + m.total_text_tokens
    )
    assert (
        m.selected_keys_digest
        == hashlib.sha256("\n".join(r["key"] for r in rows).encode()).hexdigest()
    )


def test_tokens_unit_end_to_end_and_report(world):
    mixture = {"unit": "tokens", "budget": 3000, "targets": {"caption": 0.5, "ocr": 0.5}}
    m, out = build(world, "tok", mixture=mixture)
    biggest = max(
        r["image_tokens"] + r["text_tokens"]
        for r in pq.read_table(out / "index.parquet").to_pylist()
    )
    total = m.total_image_tokens + m.total_text_tokens
    assert 3000 - biggest < total <= 3000
    for c in m.mixture.categories:
        assert abs((c.image_tokens + c.text_tokens) - 0.5 * total) <= biggest
    html = (out / "report.html").read_text()
    assert "<svg" in html and html.count("data:image/jpeg;base64,") >= 2
    # nothing to fetch: the only URLs are the SVG namespaces
    assert not re.findall(r"https?://(?!www\.w3\.org/(2000/svg|1999/xlink)\")", html)
    assert "<script" not in html
    # the build summary: stage funnel, mixture by samples and by tokens, samples with text
    for title in ("Funnel by stage", "Mixture by samples and by tokens", "Samples", "Timings"):
        assert f">{title}</h2>" in html
    assert "tokens per category" in html and "samples left after each stage" in html
    assert re.search(r'<figure class="thumb"><img src="data:image/jpeg;base64,[^"]+" alt="[^"]+">'
                     r"<figcaption><b>[^<]+</b><br>[^<]+</figcaption>", html)  # fmt: skip


def test_rejects_file_keeps_earlier_drops_and_gains_unpicked_samples(world):
    root, tok, cands = world
    out = root / "out-rej"
    out.mkdir()
    earlier = {"key": ["a-dropped"], "source": ["caption"], "stage": ["filter"],
               "op": ["image_size"], "reason": ["too_small"], "dup_group": [None],
               "dup_survivor": [None]}  # fmt: skip
    pq.write_table(pa.table(earlier, schema=REJECTS_SCHEMA), out / "rejects.parquet")
    (out / "s1-000099.tar").write_bytes(b"stale")
    staging = write_staging(root / "st-rej", cands)
    recipe, record = make_recipe(tok, SOURCES, MIX)
    m = write_stage(staging, recipe, record, out, BuildAccounting())
    rows = pq.read_table(out / "rejects.parquet").to_pylist()
    assert rows[0]["key"] == "a-dropped" and rows[0]["reason"] == "too_small"
    assert sum(r["reason"] == "not_selected" for r in rows) == 8 == len(rows) - 1
    first = (out / "rejects.parquet").read_bytes()
    assert write_stage(staging, recipe, record, out, BuildAccounting()) == m
    assert (out / "rejects.parquet").read_bytes() == first  # a rerun replaces, never appends
    assert not (out / "s1-000099.tar").exists()
    assert RatioManifest.load(out) == m and m.rejects == "rejects.parquet"
    assert m.recipe == record and m.tokenizer.digest and m.code_version.startswith("0.1.0")
    (out / "rejects.parquet").unlink()
    pq.write_table(pa.table({"key": ["x"], "reason": ["r"]}), out / "rejects.parquet")
    with pytest.raises(UserError, match="not a rejects file"):
        write_stage(staging, recipe, record, out, BuildAccounting())


def test_shortfall_fail_and_rebalance_through_write_stage(world):
    from click.testing import CliRunner

    from mindvl.common.cli import cli
    from mindvl.common.errors import UserError

    short = {"budget": 100, "targets": {"caption": 0.5, "ocr": 0.5}}
    with pytest.raises(
        UserError, match=r"category 'ocr' has 25 samples \(25 with max_repeat 1\) but needs 50"
    ):
        build(world, "short-fail", mixture=short)
    m, out = build(world, "short-rebal", mixture={**short, "shortfall": "rebalance"})
    cats = {c.category: c for c in m.mixture.categories}
    assert m.mixture.rebalanced and cats["ocr"].samples == 25 and cats["caption"].samples == 50
    assert cats["ocr"].target_fraction == 0.5 and cats[
        "ocr"
    ].achieved_fraction_samples == pytest.approx(1 / 3)
    shown = CliRunner().invoke(cli, ["manifest", "show", str(out)])
    assert shown.exit_code == 0 and "REBALANCED" in shown.output

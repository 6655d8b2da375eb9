"""Ray dedup == pure-Python dedup, whatever the parallelism, block sizes and row order."""

from __future__ import annotations

import io
import os
import random
import shutil
import tempfile

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageDraw

from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup import NearRule, dedup_dataset, dedup_rows
from mindvl.data_engine.ops.image_decode import ImageDecode, eval_hashes_from_images
from mindvl.data_engine.record import Candidate

SCHEMA = pa.schema(
    [("key", pa.string()), ("source", pa.string()), ("category", pa.string()),
     ("raw_id", pa.string()), ("images", pa.list_(pa.binary())),
     ("image_formats", pa.list_(pa.string())), ("widths", pa.list_(pa.int64())),
     ("heights", pa.list_(pa.int64())), ("caption", pa.string()), ("conversation", pa.string()),
     ("phashes", pa.list_(pa.string())), ("pixel_hashes", pa.list_(pa.string())),
     ("signatures", pa.list_(pa.string())), ("information", pa.list_(pa.float64())),
     ("blur", pa.list_(pa.float64())), ("quality", pa.float64()), ("meta", pa.string()),
     ("drop_stage", pa.string()), ("drop_op", pa.string()), ("drop_reason", pa.string())]
)  # fmt: skip


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    from ray.data import DataContext
    from ray.data.context import ShuffleStrategy

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tmp, log_to_driver=False)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    # task-based sort shuffle: no long-lived aggregator actors holding the 2 test CPUs
    ctx.shuffle_strategy = ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    yield ray
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(seed: int, size: int = 128) -> Image.Image:
    base = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)


def page(seed: int) -> Image.Image:
    img = Image.new("RGB", (200, 260), (252, 252, 252))
    x1 = 20 + int(np.random.default_rng(seed).integers(30, 150))
    ImageDraw.Draw(img).line([(15, 30), (x1, 30)], fill=(70, 70, 70), width=1)
    return img


def corpus() -> tuple[list[dict], list]:
    """Photos with exact copies, same-image/other-text copies, near copies (resize, JPEG),
    low-information pages, one pre-dropped row and two eval leaks."""
    items: list[tuple[str, bytes, str]] = []
    for i in range(14):
        img = photo(i)
        items.append((f"p{i}", encode(img), f"photo {i}"))
        if i % 3 == 0:
            items.append((f"p{i}_copy", encode(img, compress_level=9), f"photo {i}"))
        if i % 4 == 0:
            items.append((f"p{i}_text", encode(img, compress_level=1), f"other text {i}"))
        if i % 2 == 0:
            small = img.resize((96, 96), Image.Resampling.LANCZOS)
            items.append((f"p{i}_jpg", encode(small, "JPEG", quality=70), f"photo {i}"))
    for i in range(5):
        items.append((f"d{i}", encode(page(i)), f"page {i}"))
    items.append(("d0_copy", encode(page(0), compress_level=9), "page 0"))
    ev = photo(99)
    items.append(("leak", encode(ev.resize((100, 100)), "JPEG", quality=80), "leak"))
    items.append(("leak_exact", encode(ev), "leak"))
    rows = []
    for key, data, text in items:
        c = Candidate(key=key, source="s", category="c", raw_id=key, images=[data], caption=text)
        ImageDecode().apply(c)
        if key == "p5":
            c.drop("filter", "blur", "too_blurry")
        rows.append(c.to_row())
    return rows, eval_hashes_from_images([encode(ev)])


def run_ray(ray, rows: list[dict], spec: DedupSpec, evals, blocks: int, seed: int):
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    ds = ray.data.from_arrow(pa.Table.from_pylist(shuffled, schema=SCHEMA)).repartition(blocks)
    out, stats = dedup_dataset(ds, spec, evals)
    return {r["key"]: r for r in out.take_all()}, stats


def summary(rows: dict) -> dict:
    keep = ("drop_stage", "drop_op", "drop_reason", "meta")
    return {k: tuple(r[c] for c in keep) + (len(r["images"]),) for k, r in rows.items()}


def test_ray_matches_core_for_any_parallelism(ray_session, monkeypatch) -> None:
    from mindvl.data_engine.dedup import ray_components

    rows, evals = corpus()
    spec = DedupSpec.model_validate({"near": {"min_information": 0.05}, "decontaminate": ["eval"]})
    expected_rows, expected_stats = dedup_rows(rows, spec, evals)
    expected = summary({r["key"]: r for r in expected_rows})
    assert expected_stats.decontaminated == 2
    assert expected_stats.exact_dropped == 5 + 4 + 1  # copies, other-text copies, page copy
    assert expected_stats.near_dropped == 7
    assert expected_stats.low_information_exact_only == 5
    assert expected["p5"][:3] == ("filter", "blur", "too_blurry")
    # components of the verified pairs: in one task (few edges), then by distributed rounds
    for blocks, seed, local_max in ((1, 0, 10**6), (7, 1, 0)):
        monkeypatch.setattr(ray_components, "LOCAL_MAX_EDGES", local_max)
        got, stats = run_ray(ray_session, rows, spec, evals, blocks, seed)
        assert summary(got) == expected
        assert stats == expected_stats
        untouched = next(r for r in rows if r["key"] == "p1")
        assert got["p1"] == untouched  # rows without a decision pass through as they were
    assert expected_stats.near_index == "exact: 11 bands"


def test_ray_matches_core_with_sampled_banding(ray_session) -> None:
    rows, evals = corpus()
    spec = DedupSpec.model_validate(
        {"near": {"min_information": 0.05, "index": "sampled"}, "decontaminate": ["eval"]}
    )
    expected_rows, expected_stats = dedup_rows(rows, spec, evals)
    assert expected_stats.near_index.startswith("sampled: 27 tables x 10 bits")
    assert expected_stats.near_dropped == 7  # recall 0.99 at k: these close copies all found
    got, stats = run_ray(ray_session, rows, spec, evals, blocks=5, seed=2)
    assert summary(got) == summary({r["key"]: r for r in expected_rows})
    assert stats == expected_stats


@pytest.mark.parametrize("broadcast", [True, False], ids=["broadcast", "label-group-bys"])
def test_ray_matches_core_with_crowded_buckets(ray_session, monkeypatch, broadcast) -> None:
    """Both ways candidate pairs get their signatures: broadcast (small builds) and two
    group-bys on the pair's labels (beyond ``SIGNATURE_BROADCAST_BYTES``)."""
    from mindvl.data_engine.dedup import ray_dedup

    if not broadcast:
        monkeypatch.setattr(ray_dedup, "SIGNATURE_BROADCAST_BYTES", 0)
    rows, evals = corpus()
    spec = DedupSpec.model_validate(
        {"near": {"min_information": 0.05, "crowded_bucket": 1}, "decontaminate": ["eval"]}
    )
    expected_rows, expected_stats = dedup_rows(rows, spec, evals)
    assert expected_stats.near_crowded_buckets > 0  # every bucket of two or more
    got, stats = run_ray(ray_session, rows, spec, evals, blocks=4, seed=3)
    assert summary(got) == summary({r["key"]: r for r in expected_rows})
    assert stats == expected_stats


def by_column(table: pa.Table, column: str) -> list[pa.Table]:
    """A group-by as Ray's map_groups sees it: one table per value of ``column``."""
    values = table.column(column).to_pylist()
    return [
        table.take([i for i, v in enumerate(values) if v == key]) for key in sorted(set(values))
    ]


def test_band_rows_carry_no_signature_and_pairs_get_both_by_their_labels() -> None:
    """The near stage's table functions without Ray: band rows are slim (label, pHash,
    detail hash, size), and the two label group-bys give every candidate pair both
    signatures, verified as the pure-Python path verifies them."""
    from mindvl.data_engine.dedup import ray_tables as T
    from mindvl.data_engine.dedup.bands import scheme_for

    rows, _ = corpus()
    spec = DedupSpec.model_validate({"near": {"min_information": 0.05}})
    rule = NearRule.from_spec(spec.near)
    view = T.view_batch(pa.Table.from_pylist(rows, schema=SCHEMA), spec, None)
    exact = pa.concat_tables([T.exact_group(g) for g in by_column(view, "exact_key")])
    reps = int(pa.compute.sum(pa.compute.and_(exact["is_rep"], exact["near_ok"])).as_py())
    scheme = scheme_for(rule, reps)
    bands = T.band_rows(exact, scheme)
    assert "sig" not in bands.column_names and bands.num_rows == reps * scheme.n_bands
    assert bands.nbytes / bands.num_rows < 256  # the label ~100 bytes; a signature 2.4 KB
    candidates = pa.concat_tables(
        [T.band_candidates(g, scheme, rule) for g in by_column(bands, "bkey")]
    )
    assert candidates.column("sig").null_count == candidates.num_rows
    links = pa.concat_tables([T.pair_links(candidates), T.signature_links(exact)])
    firsts = pa.concat_tables([T.attach_first(g) for g in by_column(links, "key")])
    assert firsts.num_rows == candidates.num_rows  # each pair, now keyed by its larger label
    second = pa.concat_tables([firsts, T.signature_links(exact)])
    pairs = pa.concat_tables([T.verify_group(g, rule) for g in by_column(second, "key")])
    assert pairs.num_rows == candidates.num_rows
    assert all(a < b for a, b in zip(pairs["a"].to_pylist(), pairs["b"].to_pylist(), strict=True))
    sig_of = dict(zip(exact["label"].to_pylist(), exact["sig"].to_pylist(), strict=True))
    verified = pairs.filter(pairs["verified"]).to_pylist()
    assert {(r["sig_a"], r["sig_b"]) for r in verified} == {
        (sig_of[r["a"]], sig_of[r["b"]]) for r in verified
    }
    # the broadcast path: the same pairs, the same verdicts
    broadcast = T.verify_links(candidates, T.signature_table(exact), rule)
    assert sorted(broadcast.to_pylist(), key=str) == sorted(pairs.to_pylist(), key=str)
    marker = pa.table({"key": [""], "other": [""], "distance": [-1], "sig": [None]}, T.LINKS)
    kept = T.verify_links(marker, T.signature_table(exact), rule)  # a crowded bucket
    assert T.pair_counts(kept).to_pylist() == [{"pairs": 0, "verified": 0, "crowded": 1}]
    _, expected = dedup_rows(rows, spec)
    assert len(verified) > 0
    assert expected.near_candidate_pairs == candidates.num_rows
    assert expected.near_rejected_by_verify == candidates.num_rows - len(verified)


@pytest.mark.parametrize("local_max", [10**6, 0], ids=["one-task", "distributed"])
def test_ray_matches_core_without_verification(ray_session, monkeypatch, local_max) -> None:
    """``near.verify: false``: every candidate pair is an edge and components are not split
    into stars (there is no verifier to split them by), in both paths and both ways of
    finding components."""
    from mindvl.data_engine.dedup import ray_components

    monkeypatch.setattr(ray_components, "LOCAL_MAX_EDGES", local_max)
    rows, evals = corpus()
    for i in range(6):  # one-line pages of other lengths and widths: alike to pHash only
        img = page(100 + i).resize((200 + 8 * i, 260), Image.Resampling.BILINEAR)
        c = Candidate(key=f"q{i}", source="s", category="c", raw_id=f"q{i}",
                      images=[encode(img)], caption=f"q {i}")  # fmt: skip
        ImageDecode().apply(c)
        rows.append(c.to_row())
    spec = DedupSpec.model_validate({"near": {"min_information": 0.0, "verify": False}})
    expected_rows, expected_stats = dedup_rows(rows, spec, evals)
    expected = summary({r["key"]: r for r in expected_rows})
    verifying = DedupSpec.model_validate({"near": {"min_information": 0.0}})
    verified_rows, _ = dedup_rows(rows, verifying, evals)
    assert expected != summary({r["key"]: r for r in verified_rows})  # verification matters
    got, stats = run_ray(ray_session, rows, spec, evals, blocks=3, seed=4)
    assert summary(got) == expected
    assert stats == expected_stats

"""Ray dedup == local dedup, whatever the parallelism, block sizes and row order."""

from __future__ import annotations

import io
import random

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image, ImageDraw

from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup import NearRule, dedup_dataset, dedup_rows
from mindvl.data_engine.ops.image_decode import ImageDecode, eval_hashes_from_images
from mindvl.data_engine.pipeline.rows import SCHEMA  # the build's row layout, one definition
from mindvl.data_engine.record import Candidate


@pytest.fixture(scope="module")
def ray_session(ray_local):
    return ray_local  # the folder's one local Ray (conftest.py)


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


def icon() -> Image.Image:
    """A transparent icon: a disc with a cross (its trimmed pHash differs from its pHash)."""
    img = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((3, 3, 43, 43), fill=(230, 120, 20, 255))
    d.line((15, 15, 32, 32), fill=(255, 255, 255, 255), width=5)
    d.line((32, 15, 15, 32), fill=(255, 255, 255, 255), width=5)
    return img


def corpus() -> tuple[list[dict], list]:
    """Photos with exact copies, same-image/other-text copies, near copies (resize, JPEG),
    low-information pages, an icon and its padded copy (found by the trimmed pHash only),
    one pre-dropped row and two eval leaks."""
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
    padded = Image.new("RGBA", (54, 54), (0, 0, 0, 0))
    padded.paste(icon(), (3, 3))
    items += [("i0", encode(icon()), "icon"), ("i0_pad", encode(padded), "icon")]
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


def by_column(table: pa.Table, column: str) -> list[pa.Table]:
    """A group-by as Ray's map_groups sees it: one table per value of ``column``."""
    values = table.column(column).to_pylist()
    return [
        table.take([i for i, v in enumerate(values) if v == key]) for key in sorted(set(values))
    ]


def test_ray_equals_local(ray_session, monkeypatch) -> None:
    """The Ray runner calls the local path's steps, so both decide alike for any
    parallelism, block size and row order, on every route: both ways a candidate pair gets
    its signatures, sampled banding with crowded buckets in several partitions, and no
    verification."""
    from mindvl.data_engine.dedup import ray_runner

    rows, evals = corpus()
    for i in range(6):  # one-line pages of other lengths and widths: alike to pHash only
        img = page(100 + i).resize((200 + 8 * i, 260), Image.Resampling.BILINEAR)
        c = Candidate(key=f"q{i}", source="s", category="c", raw_id=f"q{i}",
                      images=[encode(img)], caption=f"q {i}")  # fmt: skip
        ImageDecode().apply(c)
        rows.append(c.to_row())
    base = {"near": {"min_information": 0.05}, "decontaminate": ["eval"]}
    spec = DedupSpec.model_validate(base)
    expected_rows, expected_stats = dedup_rows(rows, spec, evals)
    expected = summary({r["key"]: r for r in expected_rows})
    assert expected_stats.decontaminated == 2
    assert expected_stats.exact_dropped == 5 + 4 + 1  # copies, other-text copies, page copy
    assert expected_stats.near_dropped == 8
    assert expected_stats.low_information_exact_only == 11
    assert expected_stats.near_index == "exact: 11 bands"
    assert expected["p5"][:3] == ("filter", "blur", "too_blurry")
    for blocks, seed in ((1, 0), (7, 1)):
        got, stats = run_ray(ray_session, rows, spec, evals, blocks, seed)
        assert summary(got) == expected and stats == expected_stats
        untouched = next(r for r in rows if r["key"] == "p1")
        assert got["p1"] == untouched  # rows without a decision pass through as they were
    # pairs get their signatures by two group-bys on their labels; sampled, crowded buckets,
    # the band rows in several partitions
    monkeypatch.setattr(ray_runner, "SIGNATURE_BROADCAST_BYTES", 0)
    monkeypatch.setattr(ray_runner, "SLIM_ROWS_PER_PARTITION", 2000)
    crowded = {"min_information": 0.05, "crowded_bucket": 1, "index": "sampled"}
    spec = DedupSpec.model_validate({**base, "near": crowded})
    expected_rows, expected_stats = dedup_rows(rows, spec, evals)
    # the icon pad, which crowding loses in the pHash buckets, is found by its icon keys
    # (their buckets crowd at ``icon_crowded_bucket``, not at the recipe's bound)
    assert expected_stats.near_crowded_buckets > 0 and expected_stats.near_dropped == 8
    assert expected_stats.near_index.startswith("sampled: 27 tables x 10 bits")
    got, stats = run_ray(ray_session, rows, spec, evals, blocks=4, seed=3)
    assert summary(got) == summary({r["key"]: r for r in expected_rows})
    assert stats == expected_stats
    # no verification: every candidate pair is a duplicate, components are not split
    spec = DedupSpec.model_validate({"near": {"min_information": 0.0, "verify": False}})
    expected_rows, expected_stats = dedup_rows(rows, spec, evals)
    verified_rows, _ = dedup_rows(rows, DedupSpec(), evals)
    assert summary({r["key"]: r for r in expected_rows}) != summary(
        {r["key"]: r for r in verified_rows}
    )
    got, stats = run_ray(ray_session, rows, spec, evals, blocks=3, seed=4)
    assert summary(got) == summary({r["key"]: r for r in expected_rows})
    assert stats == expected_stats


def test_band_rows_carry_no_signature_and_both_routes_accept_the_same_pairs() -> None:
    """The steps without Ray: band rows are slim (label, key, detail hash, size; one per band
    and candidate key), and the runner's label group-by route accepts the pairs the
    broadcast route (and the local path) accepts."""
    from mindvl.data_engine.dedup import local as L
    from mindvl.data_engine.dedup import ray_runner as R
    from mindvl.data_engine.dedup.candidates import candidate_keys, scheme_for

    rows, _ = corpus()
    spec = DedupSpec()  # pages take part: some pairs are rejected
    rule = NearRule.from_spec(spec.near)
    views = R._views(pa.Table.from_pylist(rows, schema=SCHEMA), spec.exact, rule, None)
    exact = pa.concat_tables([R._exact_group(g) for g in by_column(views, "exact_key")])
    reps = L.near_reps(exact)
    scheme = scheme_for(rule, reps.num_rows)
    bands = L.band_rows(exact, scheme)
    keys, _, _ = candidate_keys(reps["phash"], reps["sig"].to_pylist())
    assert keys.size > reps.num_rows  # the icons' trimmed pHashes are keys of their own
    assert "sig" not in bands.column_names and bands.num_rows == keys.size * scheme.n_bands
    assert bands.nbytes / bands.num_rows < 256  # the label ~100 bytes; a signature 2.4 KB
    buckets = pa.concat_tables([L.bucket(g, scheme, rule) for g in by_column(bands, "bkey")])
    links = pa.concat_tables([R._pair_links(buckets), R._signature_links(exact)])
    firsts = pa.concat_tables([R._attach_first(g) for g in by_column(links, "key")])
    second = pa.concat_tables([firsts, R._signature_links(exact)])
    pairs = pa.concat_tables([R._verify_group(g, rule) for g in by_column(second, "key")])
    assert all(a < b for a, b in zip(pairs["a"].to_pylist(), pairs["b"].to_pylist(), strict=True))
    sig_of = L.signature_index(exact)
    assert all(
        sig_of[r["a"]] == r["sig_a"] and sig_of[r["b"]] == r["sig_b"] for r in pairs.to_pylist()
    )
    broadcast = L.verify_buckets(buckets, sig_of, rule)
    assert sorted(broadcast["a"].to_pylist()) == sorted(pairs["a"].to_pylist())
    assert sorted(broadcast["b"].to_pylist()) == sorted(pairs["b"].to_pylist())
    _, expected = dedup_rows(rows, spec)
    assert expected.near_candidate_pairs == L.bucket_counts(buckets)["pairs"]
    assert expected.near_rejected_by_verify == expected.near_candidate_pairs - pairs.num_rows
    assert expected.near_rejected_by_verify > 0 and pairs.num_rows > 0

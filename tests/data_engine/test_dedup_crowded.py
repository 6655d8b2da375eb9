"""Crowded pHash buckets (many different images with one pHash band): pairs there must also
be close in the detail hash or of one size, so pairing is no longer all-pairs."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
from dedup_helpers import hash_pairs
from PIL import Image, ImageDraw, ImageFont

from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup import plan_dedup
from mindvl.data_engine.dedup.candidates import (
    DETAIL_CONTENT,
    DETAIL_GRAY,
    BandScheme,
    detail_hash,
    hamming,
)
from mindvl.data_engine.dedup.rule import NearRule
from mindvl.data_engine.ops.image_decode import ImageDecode, image_features
from mindvl.data_engine.record import Candidate


def reference_pairs(h, detail, kinds, sizes, k, k2, cap) -> tuple[set, int]:
    """The rule of ``candidates.crowd_pairs``, pair by pair, and the number of crowded
    buckets."""
    scheme = BandScheme.exact(k)
    vals = scheme.values(h)
    close = hamming(h[:, None], h[None, :]) <= k
    crowded = {}
    for b in range(scheme.n_bands):
        for v in set(vals[:, b].tolist()):
            members = np.flatnonzero(vals[:, b] == v)
            alike = (close[np.ix_(members, members)].sum() - members.size) // 2
            crowded[(b, v)] = (alike > cap * (cap - 1) // 2, members)
    out = set()
    for i, j in zip(*np.nonzero(np.triu(close, k=1)), strict=True):
        b = next(b for b in range(scheme.n_bands) if vals[i, b] == vals[j, b])
        is_crowded, members = crowded[(b, int(vals[i, b]))]
        if not is_crowded:
            out.add((int(i), int(j)))
            continue
        size_count = Counter(sizes[members].tolist())
        near = kinds[i] == kinds[j] and int(hamming(detail[i], detail[j])) <= k2
        same_size = sizes[i] == sizes[j] and size_count[int(sizes[i])] <= cap
        if near or same_size:
            out.add((int(i), int(j)))
    return out, sum(c for c, _ in crowded.values())


def test_crowded_buckets_pair_exactly_by_the_detail_and_size_rule() -> None:
    rng = np.random.default_rng(3)
    n = 160
    base = np.uint64(0x9E3779B97F4A7C15)
    h = base ^ (np.uint64(1) << rng.integers(0, 64, n).astype(np.uint64))  # one crowd
    h[:40] = rng.integers(0, 2**63, 40, dtype=np.uint64)  # and sparse hashes
    h[40:60] = h[:20] ^ np.uint64(0b101)
    # 40 unrelated hashes in one band-0 bucket, 5 of them close copies of others: a big
    # bucket, but not a crowd
    h[60:100] = (rng.integers(0, 2**63, 40, dtype=np.uint64) & ~np.uint64(1023)) | np.uint64(77)
    h[95:100] = h[60:65] ^ np.uint64(0b11 << 20)
    detail = rng.integers(0, 2**63, n, dtype=np.uint64)
    detail[120:140] = detail[100:120] ^ np.uint64(0b111)  # close in the crowd
    kinds = np.where(rng.random(n) < 0.5, DETAIL_CONTENT, DETAIL_GRAY).astype(np.int8)
    kinds[120:140] = kinds[100:120]
    sizes = rng.integers(1, 6, n).astype(np.int64)  # some sizes shared by many, some by few
    sizes[np.isin(sizes, (2, 3))] = rng.choice([7, 8, 9], int(np.isin(sizes, (2, 3)).sum()))
    scheme, details = BandScheme.exact(6), (detail, kinds, sizes)
    rule = NearRule(max_hamming=6, crowded_bucket=30, detail_max_hamming=8)
    left, right, _, crowded = hash_pairs(h, scheme, rule, details)
    pairs = list(zip(left.tolist(), right.tolist(), strict=True))
    assert len(pairs) == len(set(pairs))  # each pair once
    expected, n_crowded = reference_pairs(h, detail, kinds, sizes, 6, 8, 30)
    assert set(pairs) == expected
    assert {(i, i + 20) for i in range(100, 120)} <= expected
    everything = hash_pairs(h, scheme, NearRule(max_hamming=6, crowded_bucket=0), details)
    assert crowded == n_crowded > 0 and len(pairs) < everything[0].size / 2
    assert everything[3] == 0  # crowded_bucket 0: no bucket is crowded
    assert {(i, i + 35) for i in range(60, 65)} <= set(pairs)  # whatever their details
    unverified = hash_pairs(h, scheme, NearRule(max_hamming=6, verify=False), details)
    assert unverified[0].size == everything[0].size and unverified[3] == 0  # no crowding


def equation(text: str, size: tuple[int, int], at: tuple[int, int]) -> Image.Image:
    img = Image.new("RGB", size, (250, 250, 248))
    font = ImageFont.load_default(size=28)  # Pillow's bundled font (FreeType)
    ImageDraw.Draw(img).text(at, text, fill=(30, 30, 30), font=font)
    return img


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_detail_hash_reads_the_content_box_of_a_mostly_blank_page() -> None:
    a = image_features(encode(equation("12 + 7 = ?", (420, 300), (120, 130)))).signature
    b = image_features(encode(equation("13 - 9 = ?", (420, 300), (120, 130)))).signature
    copy = equation("12 + 7 = ?", (420, 300), (120, 130)).resize((340, 243), Image.LANCZOS)
    c = image_features(encode(copy, "JPEG", quality=85)).signature
    (ha, ka, sa), (hb, kb, _), (hc, kc, sc) = (detail_hash(bytes.fromhex(s)) for s in (a, b, c))
    assert ka == kb == kc == DETAIL_CONTENT
    assert sa == 420 << 32 | 300 and sc == 340 << 32 | 243
    assert int(hamming(ha, hc)) <= 8 < int(hamming(ha, hb))
    photo = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    big = Image.fromarray(photo).resize((200, 200), Image.BICUBIC)
    assert detail_hash(bytes.fromhex(image_features(encode(big)).signature))[1] == DETAIL_GRAY


def test_a_crowd_of_equations_keeps_its_copies_with_far_fewer_pairs() -> None:
    rng = np.random.default_rng(7)
    rows = []
    for i in range(32):
        text = f"{rng.integers(10, 99)} {'+-x'[i % 3]} {rng.integers(2, 9)} = ?"
        size = (int(rng.integers(380, 460)), int(rng.integers(280, 320)))
        img = equation(text, size, (size[0] // 2 - 80, size[1] // 2 - 16))
        items = [(f"e{i:02d}", encode(img))]
        if i % 4 == 0:
            items.append((f"e{i:02d}_jpg", encode(img, "JPEG", quality=60)))
        if i % 4 == 1:
            small = img.resize((size[0] * 4 // 5, size[1] * 4 // 5), Image.LANCZOS)
            items.append((f"e{i:02d}_small", encode(small)))
        for key, data in items:
            c = Candidate(key=key, source="s", category="c", raw_id=key, images=[data], caption=key)
            ImageDecode().apply(c)
            rows.append(c.to_row())
    crowded = DedupSpec.model_validate({"near": {"crowded_bucket": 8}})
    plain = DedupSpec.model_validate({"near": {"crowded_bucket": 0}})
    got, got_stats = plan_dedup(rows, crowded)
    want, want_stats = plan_dedup(rows, plain)
    assert got_stats.near_crowded_buckets > 0 and want_stats.near_crowded_buckets == 0
    assert got_stats.near_candidate_pairs < want_stats.near_candidate_pairs / 3
    # crowding loses no copy the all-pairs build finds, and adds no wrong drop
    (copies, others), (all_copies, all_others) = found(got), found(want)
    assert copies == all_copies and len(copies) >= 8  # the JPEG copies at least
    assert others <= all_others


def found(decisions) -> tuple[set, set]:
    """(copies dropped for their own original, drops for another picture)."""
    same, other = set(), set()
    for key, d in decisions.items():
        if d.op == "near_dedup":
            pair = tuple(sorted((key, d.survivor)))
            (same if key[:3] == d.survivor[:3] else other).add(pair)
    return same, other

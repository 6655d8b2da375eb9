"""Dedup steps without Ray: banding (the local runner's buckets) vs brute force, components
and stars, survivor rule, the screens against the rule."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dedup_helpers import RULE, agree, hash_pairs, packed

from mindvl.data_engine.dedup import batch, candidates, local
from mindvl.data_engine.dedup.candidates import (
    KEY_CROP,
    KEY_ICON,
    KEY_OWN,
    KEY_TRIM,
    BandScheme,
    band_keys,
    band_layout,
    hamming,
    run_bounds,
    scheme_for,
)
from mindvl.data_engine.dedup.groups import components, label_key, near_groups, survivor_label
from mindvl.data_engine.dedup.rule import NearRule


def brute_force_pairs(hashes: np.ndarray, max_hamming: int) -> set[tuple[int, int]]:
    """Every pair within ``max_hamming``, by an all-pairs distance matrix."""
    d = hamming(hashes[:, None], hashes[None, :])
    i, j = np.nonzero(np.triu(d <= max_hamming, k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


def planted_hashes(rng: np.random.Generator, n: int, flips: int) -> np.ndarray:
    """n random 64-bit hashes, a third of them close copies (1..flips bits) of another."""
    h = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    h ^= rng.integers(0, 2, n).astype(np.uint64)
    for i in range(n // 3):
        src = int(rng.integers(0, n))
        bits = rng.choice(64, int(rng.integers(1, flips + 1)), replace=False)
        mask = np.uint64(sum(1 << int(b) for b in bits))
        h[i] = h[src] ^ mask
    return h


def test_close_pairs_of_long_and_short_runs_are_every_pair_within_the_radius(
    monkeypatch,
) -> None:
    """A long run (exact banding's buckets on a large build) is compared block by block,
    short ones pair by pair: both give every pair of a run within the radius, once."""
    monkeypatch.setattr(candidates, "PAIR_CHUNK", 5000)  # several blocks of the long run
    rng = np.random.default_rng(3)
    h = planted_hashes(rng, 900, flips=6)
    starts, ends = np.array([0, 600, 610, 700]), np.array([600, 610, 700, 900])
    found = [
        (int(a), int(c))
        for x, y in candidates._close_pairs(h, starts, ends, 5)
        for a, c in zip(x, y, strict=True)
    ]
    expected = set()
    for s, e in zip(starts, ends, strict=True):
        expected |= {(s + i, s + j) for i, j in brute_force_pairs(h[s:e], 5)}
    assert len(found) == len(set(found)) and set(found) == expected
    assert sum(a < 600 for a, _ in found) > 50  # the long run has planted pairs


@pytest.mark.parametrize("k", [0, 1, 3, 6, 10])
def test_banding_finds_exactly_the_pairs_within_k(k: int) -> None:
    rng = np.random.default_rng(k)
    h = planted_hashes(rng, 600, flips=k + 3)
    h[:5] = h[5]  # a run of identical hashes shares every band
    rule = NearRule(max_hamming=k, crowded_bucket=0)  # all pairs of every bucket
    left, right, distance, _ = hash_pairs(h, BandScheme.exact(k), rule)
    found = list(zip(left.tolist(), right.tolist(), strict=True))
    assert len(found) == len(set(found)), "every pair must come out exactly once"
    assert set(found) == brute_force_pairs(h, k)
    assert np.all(left < right)
    assert np.all(distance == hamming(h[left], h[right])) and np.all(distance <= k)
    assert len(found) > 10  # the planted neighbours are there


def test_bands_cover_all_bits_and_pigeonhole_holds() -> None:
    for n_bands in (1, 2, 7, 25):
        layout = band_layout(n_bands)
        assert sum(w for _, w in layout) == 64
        assert max(w for _, w in layout) - min(w for _, w in layout) <= 1
    a = np.array([0xFFFF_0000_FFFF_0000], dtype=np.uint64)
    b = a ^ np.uint64(0b1000001 << 20)  # 2 bits apart -> equal in at least one of 3 bands
    assert int(hamming(a, b)[0]) == 2
    assert (BandScheme.exact(2).values(a) == BandScheme.exact(2).values(b)).any()


def reference_components(n: int, left, right) -> list[set[int]]:
    """Components of two or more nodes, by graph search."""
    neighbours: dict[int, set[int]] = {}
    for a, b in zip(left.tolist(), right.tolist(), strict=True):
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    seen, out = set(), []
    for start in sorted(neighbours):
        if start in seen:
            continue
        todo, comp = [start], set()
        while todo:
            x = todo.pop()
            if x not in comp:
                comp.add(x)
                todo += neighbours[x] - comp
        seen |= comp
        if len(comp) > 1:
            out.append(comp)
    return out


def test_components_label_every_node_with_its_smallest_member() -> None:
    rng = np.random.default_rng(1)
    n = 300
    left, right = rng.integers(0, n, 200), rng.integers(0, n, 200)
    labels = components(n, left, right)
    groups = reference_components(n, left, right)
    for group in groups:
        assert {int(labels[x]) for x in group} == {min(group)}
    grouped = set().union(*groups)
    assert all(int(labels[x]) == x for x in range(n) if x not in grouped)
    chain = components(6, np.array([4, 3, 2, 1, 0]), np.array([5, 4, 3, 2, 1]))
    assert chain.tolist() == [0] * 6


def test_survivor_rule_resolution_then_quality_then_key_hash() -> None:
    big = survivor_label("a", 200 * 200, None)
    small_good = survivor_label("b", 100 * 100, 0.99)
    assert min(big, small_good) == big  # resolution first
    q_hi = survivor_label("c", 100 * 100, 0.9)
    q_lo = survivor_label("d", 100 * 100, -3.0)
    q_none = survivor_label("e", 100 * 100, None)
    assert sorted([q_none, q_lo, q_hi])[0] == q_hi
    assert sorted([q_none, q_lo])[0] == q_lo  # any score beats no score
    x, y = survivor_label("k1", 10, 0.5), survivor_label("k2", 10, 0.5)
    import hashlib

    smaller = min(("k1", "k2"), key=lambda k: hashlib.sha256(k.encode()).hexdigest())
    assert label_key(min(x, y)) == smaller
    assert label_key(survivor_label("src/with:odd/chars", 1, None)) == "src/with:odd/chars"


def test_fine_signatures_tell_a_moved_stroke_from_a_contrast_change() -> None:
    fine = np.full((48, 48), 250, dtype=np.uint8)
    fine[10:14, 8:30] = 40  # a short dark stroke on white
    contrast = (fine.astype(np.float32) * 0.9 + 10).astype(np.uint8)
    assert agree(packed(fine), packed(contrast))  # brightness/contrast only
    moved = np.full((48, 48), 250, dtype=np.uint8)
    moved[30:34, 8:30] = 40  # the same stroke elsewhere: a mean would barely see it
    assert not agree(packed(fine), packed(moved))
    with pytest.raises(ValueError, match="not a dedup signature"):
        agree(bytes(192), packed(fine))  # an 8x8 RGB thumbnail of an old build


def test_fine_verification_accepts_crops_of_a_picture() -> None:
    from PIL import Image, ImageDraw

    img = Image.new("L", (400, 300), 230)
    draw = ImageDraw.Draw(img)
    for i in range(6):
        draw.rectangle((30 + 60 * i, 40 + 30 * i, 70 + 60 * i, 120 + 25 * i), fill=20 + 35 * i)
    draw.ellipse((150, 100, 260, 200), fill=120)

    def sig(im: Image.Image) -> bytes:
        return packed(im.resize((48, 48), Image.Resampling.BOX).tobytes(), im.size)

    cropped = img.crop((16, 6, 400 - 8, 300 - 12))  # 2-4 % per side, then the whole re-saved
    assert agree(sig(img), sig(cropped))
    assert agree(sig(cropped), sig(img))
    other = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert not agree(sig(img), sig(other))


def test_sampled_banding_finds_pairs_at_its_stated_recall() -> None:
    rng = np.random.default_rng(7)
    h = rng.integers(0, 2**63, 2000, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    for i in range(0, 1600, 2):  # 800 pairs exactly 6 bits apart: the hardest case
        bits = rng.choice(64, 6, replace=False)
        h[i + 1] = h[i] ^ np.uint64(sum(1 << int(b) for b in bits))
    truth = brute_force_pairs(h, 6)
    assert len(truth) >= 800
    for recall in (0.99, 0.6):
        scheme = BandScheme.sampled(6, 4000, recall)  # 12-bit tables: few random collisions
        assert scheme.width == 12 and abs(scheme.expected_recall() - recall) < 0.05
        left, right, _, _ = hash_pairs(h, scheme, NearRule(max_hamming=6, crowded_bucket=0))
        found = list(zip(left.tolist(), right.tolist(), strict=True))
        assert len(found) == len(set(found)), "every pair must come out exactly once"
        assert set(found) <= truth
        measured = len(found) / len(truth)
        # these fixed tables, on uniformly random 6-bit differences (the stated recall is
        # the average over table draws, so few tables may sit a little off it)
        masks = np.zeros((20000, 64), dtype=bool)
        for row in masks:
            row[rng.choice(64, 6, replace=False)] = True
        pos = [np.array(p) for p in scheme.positions]
        hit = np.zeros(len(masks), dtype=bool)
        for p in pos:
            hit |= ~masks[:, p].any(axis=1)
        p = hit.mean()
        assert abs(measured - p) < 4 * (p * (1 - p) / len(truth)) ** 0.5 + 0.005, (measured, p)
        assert abs(hit.mean() - recall) < (0.01 if recall > 0.9 else 0.08)
    assert BandScheme.sampled(6, h.size) == BandScheme.sampled(6, h.size)  # fixed tables
    assert BandScheme.sampled(6, 10**7).n_bands > BandScheme.sampled(6, 10**5).n_bands


def test_band_keys_carry_their_band_index() -> None:
    h = np.random.default_rng(3).integers(0, 2**63, 50, dtype=np.int64).astype(np.uint64)
    for scheme in (BandScheme.exact(6), BandScheme.sampled(6, 10**6), BandScheme.exact(0)):
        keys = scheme.keys(h)
        assert keys.shape == (50, scheme.n_bands)
        for b in (0, scheme.n_bands - 1):
            assert set(scheme.bands_of_keys(keys[:, b]).tolist()) == {b}
            np.testing.assert_array_equal(scheme.values(h)[:, b], scheme.band(h, b))
    assert BandScheme.sampled(6, 10**6).n_bands > 32  # keys with the sign bit set still work


def test_sampled_recall_is_validated() -> None:
    from mindvl.common.recipe import NearDedupSpec

    with pytest.raises(ValueError, match="sampled_recall"):
        NearDedupSpec.model_validate({"index": "sampled", "sampled_recall": 1.0})
    assert scheme_for(NearRule(index="exact"), 10**6).kind == "exact"
    auto = NearRule()  # max_hamming 10, crop_only_beyond 6
    assert scheme_for(auto, 50_000).describe() == "exact: 11 bands"  # 2.5e8 collisions
    assert scheme_for(auto, 60_000).describe() == "exact: 7 bands"  # 3.7e8 at 10: radius 6
    big = scheme_for(auto, 10**6)
    assert big.kind == "sampled" and big.max_hamming == 6 and big.n_bands == 47
    assert scheme_for(NearRule(index="sampled"), 10**6).kind == "sampled"


def _picture_family(seed: int) -> list[bytes]:
    """48x48 signatures of pictures, their crops / resizes / jitters, and look-alikes."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    pics = []
    for _ in range(8):
        img = Image.new("L", (320, 240), int(rng.integers(150, 250)))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(1, 6))):
            x, y = int(rng.integers(0, 260)), int(rng.integers(0, 180))
            draw.rectangle(
                (x, y, x + int(rng.integers(8, 60)), y + 40), fill=int(rng.integers(0, 120))
            )
        pics += [
            img,
            img.crop((8, 5, 312, 236)),
            img.resize((200, 150)).point(lambda v: v * 0.9 + 8),
        ]
    return [packed(p.resize((48, 48), Image.Resampling.BOX).tobytes(), p.size) for p in pics]


def test_screens_only_drop_pairs_the_full_comparison_rejects(monkeypatch) -> None:
    """The batch screen and the half-resolution prescreen, against the same rule without
    screens, on pictures with their crops and resizes and many look-alikes; the cached
    verifier gives the same answers with a cache that starts over often."""
    from mindvl.data_engine.dedup import compare

    sigs = _picture_family(7)
    n = len(sigs)
    left, right = (a.ravel() for a in np.triu_indices(n, 1))
    far = np.zeros(left.size, dtype=np.int64)
    pairs = list(zip(left.tolist(), right.tolist(), strict=True))
    full = np.array([agree(sigs[i], sigs[j], rule=RULE.unscreened()) for i, j in pairs])
    checks = [compare.PairVerifier(RULE).check(sigs[i], sigs[j]) for i, j in pairs]
    keep = batch.screen_pairs(sigs, left, right, far, RULE)
    verifier = compare.PairVerifier(RULE, max_bytes=3 << 20)
    screened = np.array(
        [keep[p] and verifier.agree(sigs[i], sigs[j]) for p, (i, j) in enumerate(pairs)]
    )
    assert (screened == full).all() and full.sum() >= 20  # each picture with its copies
    assert (~keep).sum() >= 150  # the batch screen takes most of the look-alikes
    assert checks.count("prescreen") >= 1  # and the prescreen some of what it keeps
    assert batch.verify_pairs(sigs, left, right, far, RULE).tolist() == full.tolist()
    monkeypatch.setattr(batch, "SCREEN_MAX_BYTES", 0)  # per-chunk terms: the same answer
    monkeypatch.setattr(batch, "SCREEN_CHUNK", 7)
    assert (batch.screen_pairs(sigs, left, right, far, RULE) == keep).all()
    assert batch.screen_pairs(sigs, left[:0], right[:0], far[:0], RULE).size == 0
    with pytest.raises(ValueError, match="below max_p99"):
        NearRule(screen_max=0.4)


def test_near_groups_are_components_when_every_member_agrees() -> None:
    rng = np.random.default_rng(3)
    names = [f"{i:04d}-{rng.integers(1e6)}" for i in range(300)]
    pairs = [(names[a], names[b]) for a, b in rng.integers(0, 300, (260, 2)) if a != b]
    same = packed(rng.integers(0, 256, 48 * 48, dtype=np.uint8))  # every member agrees
    got = near_groups(pairs, dict.fromkeys(names, same), RULE)
    index = {name: i for i, name in enumerate(names)}
    left = np.array([index[a] for a, _ in pairs])
    right = np.array([index[b] for _, b in pairs])
    expected = {names[x]: names[min(g)] for g in reference_components(300, left, right) for x in g}
    assert got == expected  # chains and stars alike, the smallest label survives


def test_a_component_is_kept_as_a_star_around_its_survivor() -> None:
    """A~B, B~C (and C~D) accepted, A and C different: C is not dropped for A; the rest of
    the component forms its own star."""
    base = np.full((48, 48), 230, np.uint8)
    base[10:38, 8:20] = 30
    near = base.copy()
    near[10:38, 8:20] = 40  # B: A a little lighter
    far = base.copy()
    far[10:38, 26:34] = 90  # C: a second bar
    a, b, c = (packed(x) for x in (base, near, far))
    assert agree(a, b) and not agree(a, c)
    sig_of = {"1a": a, "1b": b, "1c": c}
    assert near_groups([("1a", "1b"), ("1b", "1c")], sig_of, RULE) == {"1a": "1a", "1b": "1a"}
    assert near_groups([("1a", "1c")], sig_of, RULE) == {}  # nothing left of the group
    far2 = far.copy()
    far2[10:38, 26:34] = 100  # D: C a little lighter, so C and D form a star of their own
    sig_of["1d"] = packed(far2)
    chain = [("1a", "1b"), ("1b", "1c"), ("1c", "1d")]
    assert near_groups(chain, sig_of, RULE) == {"1a": "1a", "1b": "1a", "1c": "1c", "1d": "1c"}
    unverified = NearRule(verify=False)  # no rule to split by: the component stays whole
    assert set(near_groups(chain, sig_of, unverified).values()) == {"1a"}


def test_without_verification_far_phash_matches_are_not_paired() -> None:
    """Matches beyond ``crop_only_beyond`` need verification to see a crop's sizes."""
    assert scheme_for(NearRule(), 100).max_hamming == 10
    assert scheme_for(NearRule(verify=False), 100).max_hamming == 6
    sampled = NearRule(verify=False, index="sampled", max_hamming=4)
    assert scheme_for(sampled, 100).max_hamming == 4


@pytest.mark.parametrize("index", ["exact", "sampled"])
def test_buckets_paired_together_give_what_each_gives_alone(index: str) -> None:
    """``local.buckets_of`` pairs the buckets that cannot be crowded together, vectorised
    across them; they must give exactly the pairs each gives alone (``local.bucket``), with
    own, trimmed, crop and icon keys, and beside a crowded bucket paired on its own."""
    rng = np.random.default_rng(5)
    own = planted_hashes(rng, 300, 3)
    own[230:300] = own[0]  # 71 copies: a bucket past crowded_bucket in every band

    def near(h: np.ndarray, most: int) -> np.ndarray:
        flips = [rng.choice(64, int(rng.integers(1, most + 1)), replace=False) for _ in h]
        return h ^ np.array([sum(1 << int(b) for b in f) for f in flips], dtype=np.uint64)

    keys = np.concatenate([own, near(own[:100], 2), near(own, 5), near(own, 5), near(own, 4)])
    image = np.concatenate([np.arange(300), np.arange(100), *[np.arange(300)] * 3])
    kind = np.repeat(
        np.array([KEY_OWN, KEY_TRIM, KEY_CROP, KEY_CROP, KEY_ICON], np.int8),
        [300, 100, 300, 300, 300],
    )
    rule = NearRule(max_hamming=6, crop_key_max_hamming=4)
    scheme = BandScheme.exact(6) if index == "exact" else BandScheme.sampled(6, keys.size)
    at = np.repeat(np.arange(keys.size), scheme.n_bands)
    zero = np.zeros(at.size)
    bands = pa.table(
        {"bkey": band_keys(scheme, keys, kind).reshape(-1), "label": [f"{i:04d}" for i in image[at].tolist()],
         "phash": keys[at], "own": own[image[at]], "detail": zero.astype(np.uint64),
         "detail_kind": zero.astype(np.int8), "size": zero.astype(np.int64), "kind": kind[at]},
        schema=local.BANDS,
    )  # fmt: skip
    together = local.buckets_of(bands, scheme, rule)
    ordered = bands.sort_by("bkey")
    starts, ends = run_bounds(ordered.num_rows, ordered["bkey"].to_numpy())
    alone = pa.concat_tables([local.bucket(ordered.slice(s, e - s), scheme, rule)
                              for s, e in zip(starts.tolist(), ends.tolist(), strict=True)])  # fmt: skip

    def pairs(t: pa.Table) -> list:
        cols = (pc.list_flatten(t[c]).to_pylist() for c in ("a", "b", "distance"))
        return sorted(zip(*cols, strict=True))

    assert pairs(together) == pairs(alone) and len(pairs(alone)) > 300
    assert local.bucket_counts(together) == local.bucket_counts(alone)
    assert local.bucket_counts(alone)["crowded"] >= 1
    assert together.num_rows < alone.num_rows / 10  # the small buckets came out together


def test_icon_keys_crowd_a_bucket_at_their_own_bound() -> None:
    """100 icons whose icon keys are one value (simple icons' content means collide): their
    bucket holds 4,950 close pairs, past ``crowded_bucket`` (64: 2,016) but within
    ``icon_crowded_bucket`` (256), so every pair is kept; own pHash keys as close crowd."""
    n = 100
    keys, owner = np.full(n, 0x0F0F_0F0F_0F0F_0F0F, np.uint64), np.arange(n)
    # own pHashes and detail hashes far apart, sizes all different: only the icon keys pair
    own, detail = np.random.default_rng(3).integers(0, 2**63, (2, n)).astype(np.uint64)
    for h, bound in ((own, RULE.max_hamming), (detail, RULE.detail_max_hamming)):
        assert (hamming(h[:, None], h[None]) + 64 * np.eye(n, dtype=np.int64)).min() > bound
    details = detail, np.zeros(n, np.int8), np.arange(n, dtype=np.int64)
    scheme = BandScheme.exact(RULE.max_hamming)
    for kind, bound, crowded in ((KEY_ICON, RULE.icon_crowded_bucket, False),
                                 (KEY_ICON, 64, True), (KEY_OWN, RULE.icon_crowded_bucket, True)):  # fmt: skip
        rule = replace(RULE, icon_crowded_bucket=bound)
        kinds = np.full(n, kind, np.int8)
        i, _, _, was = candidates.bucket_pairs(keys, owner, own, kinds, 0, scheme, rule, details)
        assert was is crowded and i.size == (0 if crowded else n * (n - 1) // 2)


def test_pair_distance_is_the_least_the_rule_judges_over_the_key_pairs_a_build_finds():
    """``candidates.pair_distance``: over the two images' key pairs within the banding's
    radius that ``keys_pair`` accepts, the least ``judged_distance`` (an icon content key
    pair caps the pHash distance, a canvas key pair keeps it); None when none pairs."""
    own_a, own_b = 0, (1 << 20) - 1  # 20 bits apart: beyond the radius
    key = 0x0F0F_0F0F_0F0F_0F0F

    def image(own, kinds, near):
        return own, np.array([own, key ^ near], np.uint64), np.array(kinds, np.int8)

    icon = [candidates.KEY_OWN, candidates.KEY_ICON]
    canvas = [candidates.KEY_OWN, candidates.KEY_CANVAS]
    cap = int(RULE.crop_only_beyond_for(True))
    assert candidates.pair_distance(image(own_a, icon, 0), image(own_b, icon, 1), RULE) == cap
    assert candidates.pair_distance(image(own_a, canvas, 0), image(own_b, canvas, 1), RULE) == 20
    assert candidates.pair_distance(image(own_a, icon, 0), image(own_b, canvas, 1), RULE) is None
    assert candidates.pair_distance(image(own_a, icon, 0), image(3, icon, 0), RULE) == 2


def test_crop_keys_pair_with_own_pHashes_and_closely_with_crop_keys() -> None:
    """A crop key pairs with another image's own pHash within ``crop_radius`` and with its
    crop keys within ``crop_to_crop_radius`` (never without comparison), not with its
    trimmed pHash."""
    ka = np.array([KEY_CROP, KEY_CROP, KEY_CROP, KEY_CROP, KEY_CROP], np.int8)
    kc = np.array([KEY_OWN, KEY_OWN, KEY_CROP, KEY_CROP, KEY_TRIM], np.int8)
    d = np.array([8, 9, 4, 5, 0])
    assert candidates.keys_pair(ka, kc, d, RULE).tolist() == [True, False, True, False, False]
    unverified = replace(RULE, verify=False)
    assert not candidates.keys_pair(ka[2:3], kc[2:3], d[2:3], unverified)[0]


@pytest.mark.parametrize("side", [24, 48])
def test_search_operators_carry_no_subnormal_floats(side):
    """The Gaussian tails of the crop and blur operators fall below float32's smallest
    normal number; kept, they slow every thumbnail matmul some 30-fold on Intel CPUs (a
    microcode assist per subnormal operand), so they are stored as 0."""
    from mindvl.data_engine.dedup.search import crop_operators, search_operators

    crops, _, blur = search_operators(side)
    tiny = np.finfo(np.float32).tiny
    for m in (crops, blur, crop_operators(side, 1.1, (0.0, 0.5, 1.0))):
        assert m.dtype == np.float32
        assert not ((m != 0) & (np.abs(m) < tiny)).any()
    assert (blur > 0).sum() < blur.size  # the tails are there to drop at this side


def test_pairs_are_compared_in_an_order_that_keeps_each_image_in_use_briefly():
    """The verifier caches each image's search terms (about 1 MB) under a memory bound, so
    the pairs are compared in a reverse Cuthill-McKee order of their graph: a chain of 300
    images under shuffled indices, given in random order, comes back so that each image's
    pairs are next to each other (in the order given, they lie across the whole list)."""
    from mindvl.data_engine.dedup.batch import _cache_order

    rng = np.random.default_rng(0)
    ids = rng.permutation(300)
    pairs = rng.permutation(np.stack([ids[:-1], ids[1:]], 1))
    left, right = pairs[:, 0], pairs[:, 1]

    def widest_span(order: np.ndarray) -> int:
        first, last = {}, {}
        for at, p in enumerate(order.tolist()):
            for image in (left[p], right[p]):
                first.setdefault(image, at)
                last[image] = at
        return max(last[i] - first[i] for i in first)

    order = _cache_order(left, right, 300)
    assert sorted(order.tolist()) == list(range(299))
    assert widest_span(order) == 1
    assert widest_span(np.arange(299)) > 100
    assert _cache_order(left[:0], right[:0], 300).size == 0

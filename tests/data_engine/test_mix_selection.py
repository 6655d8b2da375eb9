"""Selection to target ratios: exactness, determinism, upsampling and shortfalls."""

from __future__ import annotations

import random

import pytest

from mindvl.common.recipe import MixtureSpec
from mindvl.data_engine.mix.selection import Item, ShortfallError, interleave, select


def items(spec: dict[tuple[str, str], int], seed: int = 0) -> list[Item]:
    rng = random.Random(seed)
    return [
        Item(f"{src}-{i}", src, cat, rng.randint(4, 256), rng.randint(5, 60))
        for (src, cat), n in sorted(spec.items())
        for i in range(n)
    ]


POOL = {("a", "caption"): 300, ("b", "caption"): 100, ("c", "ocr"): 250, ("d", "chart"): 200}
TARGETS = {"caption": 0.5, "ocr": 0.3, "chart": 0.2}


def test_samples_mode_hits_targets_within_one_sample():
    spec = MixtureSpec(unit="samples", budget=333, targets=TARGETS)
    sel = select(items(POOL), spec, seed=1)
    counts = {c: len(p) for c, p in sel.picks.items()}
    assert sum(counts.values()) == 333
    for cat, t in TARGETS.items():
        assert abs(counts[cat] - t * 333) <= 1, (cat, counts)
    assert not sel.rebalanced


def test_tokens_mode_hits_targets_within_one_sample():
    spec = MixtureSpec(unit="tokens", budget=40_000, targets=TARGETS)
    pool = items(POOL)
    sel = select(pool, spec, seed=1)
    biggest = max(i.tokens for i in pool)
    got = {c: sum(p.item.tokens for p in ps) for c, ps in sel.picks.items()}
    total = sum(got.values())
    assert 40_000 - biggest < total <= 40_000
    for cat, t in TARGETS.items():
        assert abs(got[cat] - t * total) <= biggest, (cat, got[cat], t * total)
        # and the sample counts are far from the token shares: the unit really matters
    assert len(sel.picks["caption"]) != len(sel.picks["ocr"])


def test_selection_is_independent_of_input_order_and_takes_the_top_of_the_ranking():
    spec = MixtureSpec(unit="samples", budget=200, targets=TARGETS)
    pool = items(POOL)
    shuffled = pool[:]
    random.Random(5).shuffle(shuffled)
    a = select(pool, spec, seed=3)
    b = select(shuffled, spec, seed=3)
    assert {c: [p.key for p in v] for c, v in a.picks.items()} == {
        c: [p.key for p in v] for c, v in b.picks.items()
    }
    c = select(pool, spec, seed=4)
    assert [p.key for p in c.picks["ocr"]] != [p.key for p in a.picks["ocr"]]
    # A bigger budget keeps every earlier pick of a category (top-of-ranking prefix).
    bigger = select(pool, MixtureSpec(unit="samples", budget=400, targets=TARGETS), seed=3)
    ocr_small = [p.key for p in a.picks["ocr"]]
    assert [p.key for p in bigger.picks["ocr"]][: len(ocr_small)] == ocr_small


def test_source_targets_split_a_category():
    spec = MixtureSpec(
        unit="samples",
        budget=300,
        targets=TARGETS,
        source_targets={"caption": {"a": 0.8, "b": 0.2}},
    )
    sel = select(items(POOL), spec, seed=0)
    srcs = [p.item.source for p in sel.picks["caption"]]
    assert len(srcs) == 150
    assert abs(srcs.count("a") - 120) <= 1 and abs(srcs.count("b") - 30) <= 1


def test_upsampling_repeats_whole_passes_with_own_keys():
    spec = MixtureSpec(unit="samples", budget=1000, targets=TARGETS, max_repeat=3)
    sel = select(items(POOL), spec, seed=0)
    chart = sel.picks["chart"]  # needs 200 of 200: no repeats
    ocr = sel.picks["ocr"]  # needs 300 of 250: 50 repeats
    caption = sel.picks["caption"]  # needs 500 of 400: 100 repeats
    assert len(chart) == 200 and all(p.repeat == 0 for p in chart)
    assert len(ocr) == 300 and sum(p.repeat == 1 for p in ocr) == 50
    assert len({p.key for p in ocr}) == 300
    rep = next(p for p in ocr if p.repeat)
    assert rep.key == f"{rep.item.key}-r1" and rep.origin_key == rep.item.key
    assert len(caption) == 500 and sum(p.repeat for p in caption) == 100


def test_shortfall_fail_names_category_have_and_need():
    targets = {"caption": 0.4, "ocr": 0.4, "chart": 0.2}
    spec = MixtureSpec(unit="samples", budget=1000, targets=targets, max_repeat=1.1)
    with pytest.raises(ShortfallError) as err:
        select(items(POOL), spec, seed=0)
    msg = err.value.format_message()
    assert "category 'ocr' has 250 samples (275 with max_repeat 1.1)" in msg
    assert "needs 400 samples" in msg and "\n" not in msg


def test_shortfall_fail_inside_a_category_names_the_source():
    spec = MixtureSpec(
        unit="samples",
        budget=400,
        targets=TARGETS,
        source_targets={"caption": {"a": 0.2, "b": 0.8}},
    )
    with pytest.raises(ShortfallError, match="source 'b' of category 'caption' has 100 samples"):
        select(items(POOL), spec, seed=0)


def test_shortfall_rebalance_scales_the_others():
    spec = MixtureSpec(
        unit="samples", budget=1000, targets=TARGETS, max_repeat=1.0, shortfall="rebalance"
    )
    sel = select(items(POOL), spec, seed=0)
    n = {c: len(p) for c, p in sel.picks.items()}
    assert sel.rebalanced
    assert n["ocr"] == 250 and n["chart"] == 200  # all they have
    assert n["caption"] == 400  # all it has; the budget cannot be met
    spec2 = MixtureSpec(
        unit="samples", budget=700, targets=TARGETS, max_repeat=1.0, shortfall="rebalance"
    )
    n2 = {c: len(p) for c, p in select(items(POOL), spec2, seed=0).picks.items()}
    # chart needs 140 (has 200), ocr 210 (has 250), caption 350 (has 400): no shortfall
    assert n2 == {"caption": 350, "ocr": 210, "chart": 140}
    spec3 = MixtureSpec(
        unit="samples",
        budget=800,
        targets={"caption": 0.3, "ocr": 0.2, "chart": 0.5},
        shortfall="rebalance",
    )
    sel3 = select(items(POOL), spec3, seed=0)
    n3 = {c: len(p) for c, p in sel3.picks.items()}
    # chart runs out at 200; caption and ocr fill the rest 3:2.
    assert sel3.rebalanced and n3["chart"] == 200 and sum(n3.values()) == 800
    assert abs(n3["caption"] / n3["ocr"] - 1.5) < 0.02


def test_interleave_keeps_every_prefix_close_to_the_mixture():
    spec = MixtureSpec(unit="samples", budget=500, targets=TARGETS)
    sel = select(items(POOL), spec, seed=0)
    stream = interleave(sel.picks, "samples")
    assert sorted(p.key for p in stream) == sorted(p.key for v in sel.picks.values() for p in v)
    for end in (50, 100, 250):
        window = stream[end - 50 : end]
        for cat, t in TARGETS.items():
            assert abs(sum(p.item.category == cat for p in window) - 50 * t) <= 2

"""The corpus kit never repeats a picture: scenes, icons and equations that would repeat an
earlier one of their category (same content, relative geometry within the tolerance) are
drawn again on a fresh stream (kit version 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mindvl.data_engine.synth.records import CATEGORIES


def test_a_repeated_picture_is_drawn_again_on_a_fresh_stream():
    from mindvl.data_engine.synth.kit import (
        COLLISION_TOLERANCE,
        DistinctPictures,
        KitOptions,
        render_distinct,
    )
    from mindvl.data_engine.synth.records import Rendered

    def pic(key: str, *layout: float) -> Rendered:
        return Rendered(Image.new("RGB", (4, 4)), key, "", "", layout_key=key, layout=layout)

    seen = DistinctPictures()
    seen.add(pic("A red circle.", 1.0, 0.2, 0.2, 0.5, 0.5))
    close = COLLISION_TOLERANCE * 0.9
    assert seen.collides(pic("A red circle.", 1.0, 0.2 + close, 0.2, 0.5, 0.5 - close))
    assert not seen.collides(
        pic("A red circle.", 1.0, 0.2 + 1.1 * COLLISION_TOLERANCE, 0.2, 0.5, 0.5)
    )
    assert not seen.collides(pic("A blue circle.", 1.0, 0.2, 0.2, 0.5, 0.5))  # other content
    assert not seen.collides(pic("A red circle.", 1.0, 0.2, 0.2, 0.5, 0.5, 0.9, 0.9))
    assert not seen.collides(pic("A red circle."))  # no layout: never checked

    opts = KitOptions(10, "webdataset", 0.0, 3, 64, 128)
    firsts = []

    def draw(r: np.random.Generator) -> Rendered:  # the first draw repeats the red circle
        firsts.append(float(r.random()))
        return pic("A red circle.", 1.0, 0.2, 0.2, 0.5, 0.5 + 0.5 * (len(firsts) > 1))

    r, got = render_distinct(opts, "caption", 4, 0, draw, seen)
    assert got.layout[-1] == 1.0 and seen.redrawn == 1 and len(firsts) == 2
    assert firsts[0] == float(opts.rng("caption", 4, 0).random())  # attempt 0: the old stream
    assert firsts[1] == float(opts.rng("caption", 4, 0, attempt=1).random()) != firsts[0]
    assert seen.collides(got)  # it joined the pictures drawn so far
    with pytest.raises(RuntimeError, match="draws all repeat an earlier picture"):
        render_distinct(opts, "caption", 5, 0, lambda r: pic("A red circle.", *got.layout), seen)


def test_no_two_originals_repeat_one_picture(tmp_path, monkeypatch):
    """Scenes, icons and equations: two renderings of the same content never lie within the
    tolerance; small canvases and many icons make repeats likely without the rule."""
    from mindvl.data_engine.synth import kit as K

    def close(a, b) -> bool:
        return (
            a.layout_key == b.layout_key
            and len(a.layout) == len(b.layout) > 0
            and max(abs(x - y) for x, y in zip(a.layout, b.layout, strict=True))
            < K.COLLISION_TOLERANCE
        )

    kept: dict[int, list] = {}
    add = K.DistinctPictures.add
    monkeypatch.setattr(
        K.DistinctPictures,
        "add",
        lambda self, r: (kept.setdefault(id(self), []).append(r), add(self, r)),
    )
    K.generate_corpus(
        tmp_path / "c", 400, "webdataset", faults=0.5, seed=1, min_side=64, max_side=80
    )
    kit = json.loads((tmp_path / "c" / "kit.json").read_text())
    assert kit["version"] == 2 and set(kit["redrawn"]) == set(CATEGORIES)
    assert sum(kit["redrawn"].values()) > 0
    checked = [p for pics in kept.values() for p in pics if p.layout]
    assert len(checked) > 150
    for pics in kept.values():
        assert not any(close(a, b) for i, a in enumerate(pics) for b in pics[:i])
    # the renderers alone do repeat pictures at this size: the rule is what prevents it
    opts = K.KitOptions(400, "webdataset", 0.5, 1, 64, 80)
    drawn = [K.RENDERERS["caption"](opts.rng("caption", i, 0), 64, 80) for i in range(100)]
    drawn += [K.render_low_info(opts.rng("caption", j, 4), "caption", 64, 80) for j in range(50)]
    assert any(close(a, b) for i, a in enumerate(drawn) for b in drawn[:i])

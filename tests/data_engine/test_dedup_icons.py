"""Dedup of icons (pictures of at most 64 px, which carry their own pixels): the icon
candidate keys, pads and crops found pixel for pixel, what only a pad or crop explains,
and a flag or card whose pad changed a detail. Two icons of one size:
``test_dedup_icons_one_size.py``; resizes and JPEGs of icons: ``test_dedup_resize.py``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from dedup_helpers import RULE
from dedup_pictures import check, face, features, flag, icon, on_white, padded, pixel_icon, row
from PIL import Image, ImageDraw

from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup import candidates, compare, fingerprint, pixels
from mindvl.data_engine.dedup.candidates import hamming
from mindvl.data_engine.dedup.compare import PairVerifier
from mindvl.data_engine.dedup.decontaminate import EvalIndex
from mindvl.data_engine.dedup.fingerprint import parse_signature
from mindvl.data_engine.dedup.local import plan_dedup
from mindvl.data_engine.dedup.search import match_at_sizes, match_terms, sizes_in_reach, terms


def test_a_crop_of_a_16_px_icon_is_found_at_the_scale_its_sizes_tell():
    """A 14 px crop of a 16 px icon is scale 1.143, beyond the search grid's 1.12, at an
    anchor off its quarters: the grid's best crop is too far, the crop the two sizes tell
    (``match_at_sizes``) is found; another icon cut the same way is not accepted."""
    icon16 = pixel_icon()
    crop = icon16.crop((1, 0, 15, 14))
    sa, sb = (parse_signature(bytes.fromhex(features(x).signature)) for x in (icon16, crop))
    assert match_terms(terms(sa.pixels()), terms(sb.pixels())).p99 > RULE.max_p99
    assert (
        match_at_sizes(terms(sa.pixels()), terms(sb.pixels()), sa.size, sb.size).p99 <= RULE.max_p99
    )
    assert check(icon16, crop) is None
    other = pixel_icon()
    ImageDraw.Draw(other).rectangle((2, 12, 6, 14), fill=(40, 160, 60, 255))
    assert check(icon16, other.crop((1, 0, 15, 14))) is not None


def test_sizes_in_reach_of_the_crop_the_sizes_tell():
    pairs = [((16, 16), (14, 14)), ((48, 48), (44, 43)), ((14, 14), (16, 16)),
             ((113, 113), (133, 133)), ((48, 48), (48, 48)), ((48, 40), (44, 44))]  # fmt: skip
    a, b = (np.array([p[i] for p in pairs]) for i in (0, 1))
    assert sizes_in_reach(a, b).tolist() == [True, True, True, False, False, False]


def test_crops_and_pads_of_a_16_px_icon_by_a_pixel_per_side_are_candidates():
    """Cutting a pixel from each side of a 16 px icon (or padding one by a pixel) moves its
    pHash past the bound, and ``CROP_KEEP`` of 16 px keeps 15: the crop keys of pictures
    under 20 px also cut two pixels per axis, so both pairs are compared and merged."""
    icon16 = pixel_icon()
    pad = Image.new("RGBA", (18, 18), (0, 0, 0, 0))
    pad.paste(icon16, (1, 1))
    for copy in (icon16.crop((1, 1, 15, 15)), pad):
        fa, fb = features(icon16), features(copy)
        assert hamming(int(fa.phash, 16), int(fb.phash, 16)) > RULE.max_hamming
        decisions, stats = plan_dedup([row("a", fa), row("b", fb)], DedupSpec())
        assert stats.near_candidate_pairs >= 1
        dropped, kept = ("a", "b") if copy is pad else ("b", "a")  # the larger survives
        assert decisions[dropped].op == "near_dedup" and decisions[dropped].survivor == kept
        assert decisions[kept].op is None


def test_a_padded_icon_keeps_its_pixels_and_a_look_alike_does_not(monkeypatch):
    """Two icons whose content lies inside both canvases at one size can only be a pad or a
    crop of each other, which keeps the smaller's own pixels (``compare.only_pad_or_crop``): a
    padded copy is found at its offset; the face with a 3x3 freckle (the size of the mark
    that tells status icons apart), padded, passes the blurred 48x48 comparison at the crop
    the sizes tell but not its pixels."""
    smile, freckled = face((240, 160, 20)), face((240, 160, 20))
    ImageDraw.Draw(freckled).rectangle((10, 26, 12, 28), fill=(150, 90, 10, 255))
    assert check(smile, padded(smile, 2)) is None
    assert check(smile, padded(freckled, 2)) == "pixels"
    monkeypatch.setattr(compare, "only_pad_or_crop", lambda a, b, rule: False)
    assert check(smile, padded(freckled, 2)) is None  # what the thumbnails alone decide


def test_a_pad_of_a_16_px_icon_is_found_by_its_pixels_where_thumbnails_miss(monkeypatch):
    """A 2 px pad of a hard-edged 16 px icon: its 48x48 thumbnail resamples every edge at
    another phase (3x and 2.4x), so the thumbnails alone reject it; its own pixels are
    found at offset (2, 2), and that accepts it (not found, the pair is rejected as only a
    pad could explain it)."""
    icon16 = pixel_icon()
    assert check(icon16, padded(icon16, 2)) is None
    monkeypatch.setattr(compare, "pixels_fit", lambda a, b, rule: False)
    assert check(icon16, padded(icon16, 2)) == "pixels"
    monkeypatch.setattr(compare, "only_pad_or_crop", lambda a, b, rule: False)
    assert check(icon16, padded(icon16, 2)) == "prescreen"


def test_icons_are_nested_as_a_crop_would_be():
    """The pixel check looks for the smaller icon inside the larger only where it could be a
    crop of it (``crop_min_kept`` of each side): a 10 px patch found in a 48 px icon is no
    copy of it."""
    sizes = [((48, 48), (52, 52)), ((16, 16), (14, 15)), ((48, 48), (10, 10)),
             ((48, 40), (40, 48)), ((32, 32), (32, 32)), ((48, 48), (44, 44))]  # fmt: skip
    a, b = (np.array([s[i] for s in sizes]) for i in (0, 1))
    native = np.array([True, True, True, True, True, False])
    got = pixels.nested_icons(a, b, native, np.ones(len(sizes), bool), RULE)
    assert got.tolist() == [True, True, False, False, False, False]


def card(lines: tuple[int, ...]) -> Image.Image:
    """A 400x300 flag card: a tricolour and a paragraph of six text lines (their lengths)."""
    img = Image.new("RGB", (400, 300), (250, 240, 220))
    d = ImageDraw.Draw(img)
    for i, c in enumerate([(255, 150, 50), (255, 255, 255), (20, 140, 60)]):
        d.rectangle((40, 60 + i * 40, 220, 99 + i * 40), fill=c)
    d.ellipse((116, 106, 144, 134), fill=(230, 120, 20))
    for k, short in enumerate(lines):
        d.line((250, 70 + k * 16, 370 - short, 70 + k * 16), fill=(60, 60, 60), width=3)
    return img


def test_a_padded_card_with_a_shorter_text_line_is_another_card(monkeypatch):
    """Two 400 px cards whose content lies inside both canvases can only be a pad or crop
    of each other, so they are compared at the crop their sizes tell, not resized on the
    grid, and held to ``pad_max_peak`` there (the Niger card beside India's padded one): a
    text line 60 px shorter is a peak of 0.79 there, within the bound of a resize (1.0)."""
    text, other = (0, 20, 40, 0, 20, 40), (60, 20, 40, 0, 20, 40)
    pad = Image.new("RGB", (420, 320), (250, 240, 220))
    pad.paste(card(text), (10, 10))
    assert check(card(text), pad) is None
    pad.paste(card(other), (10, 10))
    assert check(card(text), pad) == "gray"
    monkeypatch.setattr(compare, "only_pad_or_crop", lambda a, b, rule: False)
    assert check(card(text), pad) is None


def test_a_pad_of_a_framed_icon_is_found_by_its_pixels_before_its_trim_box(monkeypatch):
    """A flag icon with a one-pixel dark frame, padded with white: the original's trim takes
    the frame for its ground (a box 2 px smaller), the pad's trim keeps it, so the trim
    boxes alone would call the pad another drawing at another scale (`trim_scale`); the
    icons' pixels are looked for first, and found."""
    framed = flag([(0, 90, 170), (250, 250, 250), (200, 20, 40)], size=(44, 30)).convert("RGB")
    ImageDraw.Draw(framed).rectangle((0, 0, 43, 29), outline=(20, 20, 20))
    pad = Image.new("RGB", (48, 34), (255, 255, 255))
    pad.paste(framed, (2, 2))
    sa, sb = (bytes.fromhex(features(x).signature) for x in (framed, pad))
    ta, tb = parse_signature(sa).trimmed, parse_signature(sb).trimmed
    assert (ta.width, ta.height, tb.width, tb.height) == (42, 28, 44, 30)
    assert PairVerifier(RULE).check(sa, sb, distance=12) is None
    monkeypatch.setattr(compare, "pixels_fit", lambda a, b, rule: False)
    assert PairVerifier(RULE).check(sa, sb, distance=12) == "trim_scale"


def cross(size: int = 32) -> Image.Image:
    """A small simple transparent icon: a green cross."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d, s = ImageDraw.Draw(img), size
    d.rectangle((s * 0.42, s * 0.15, s * 0.58, s * 0.85), fill=(30, 120, 30, 255))
    d.rectangle((s * 0.15, s * 0.42, s * 0.85, s * 0.58), fill=(30, 120, 30, 255))
    return img


def test_a_simple_icon_and_its_small_jpeg_are_found_by_the_icon_key(monkeypatch):
    """A 32 px cross and its JPEG on white at 22 px: the low DCT terms of simple symmetric
    content sit near their median, so the pHashes are 26 bits apart (each one's crop keys as
    far from the other's pHash);
    the average hashes of the icons' own content (``fingerprint.icon_keys``) are equal, and a
    pair of icon keys is judged as a near pair (``candidates.judged_distance``): merged, in
    dedup and in decontamination. Without icon keys (and crop keys pairing with crop keys,
    which find it too) it is never compared."""
    small = cross().resize((22, 22), Image.Resampling.LANCZOS)
    flat = Image.new("RGB", small.size, (255, 255, 255))
    flat.paste(small, mask=small.getchannel("A"))
    fa, fb, fo = features(cross()), features(flat, "JPEG", quality=85), features(icon("x", 32))
    sa, sb = (parse_signature(bytes.fromhex(f.signature)) for f in (fa, fb))
    assert hamming(int(fa.phash, 16), int(fb.phash, 16)) > RULE.max_hamming
    assert hamming(fingerprint.icon_keys(sa)[0], fingerprint.icon_keys(sb)[0]) == 0
    rows = [row("a", fa), row("b", fb), row("c", fo)]
    decisions, _ = plan_dedup(rows, DedupSpec())
    assert decisions["b"].op == "near_dedup" and decisions["b"].survivor == "a"
    assert decisions.get("c") is None or decisions["c"].op is None
    index = EvalIndex([(fa.phash, fa.signature, fa.pixel_hash, fa.information)], RULE)
    assert index.match_row(row("b", fb)) == 0 and index.match_row(row("c", fo)) is None
    monkeypatch.setattr(candidates, "icon_keys", lambda sig: (0, 0, 0))
    apart = replace(RULE, crop_to_crop_max_hamming=-1)
    decisions, _ = plan_dedup(rows, DedupSpec(), rule=apart)
    assert decisions.get("b") is None or decisions["b"].op is None
    assert (
        EvalIndex([(fa.phash, fa.signature, fa.pixel_hash, fa.information)], apart).match_row(
            row("b", fb)
        )
        is None
    )


def test_a_flag_is_not_a_padded_flag_of_other_colours():
    """16x11 flags fill their canvas: a flag of the same stripes with its top stripe 58
    levels bluer, padded by a pixel a side, has a trim box of the smaller flag's size inside
    its canvas. Only a pad explains that (a resize of a padded flag would shrink the
    content), so the smaller flag's pixels must be found there: they are not (`pixels`);
    the thumbnails alone agree. The flag's own pad is found."""

    def stripes(top) -> Image.Image:
        img = Image.new("RGBA", (16, 11), top)
        d = ImageDraw.Draw(img)
        d.rectangle((0, 5, 16, 11), fill=(0, 56, 147))
        d.rectangle((0, 9, 16, 11), fill=(206, 17, 38))
        return img

    flag_, other = stripes((252, 209, 22)), padded(stripes((252, 209, 80)), 1)
    assert check(flag_, other) == "pixels" and check(flag_, padded(flag_, 1)) is None


def test_a_padded_icon_with_another_glow_is_another_icon():
    """Two 48 px icons, one on white, whose white glows (alpha 60 and 140) differ on black
    only; the second padded by 2 px a side. The first's content touches its bottom edge
    (the trim box may have been cut there), but along x both boxes are 22 px, inside both
    canvases, where a resize by 52 / 48 would make 23.8: only a pad explains the sizes, so
    the first's pixels must be found in the pad, on black too. They are not (`pixels`);
    its own pad is found."""

    def bar(glow: int) -> Image.Image:
        img = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
        d = ImageDraw.Draw(img)
        d.rectangle((12, 3, 35, 44), fill=(255, 255, 255, glow))
        d.rectangle((13, 4, 34, 44), fill=(60, 60, 70, 255))
        d.rectangle((20, 45, 27, 47), fill=(60, 60, 70, 255))  # a stand to the bottom edge
        d.rectangle((17, 10, 30, 20), fill=(250, 220, 60, 255))
        return img

    assert check(bar(60), padded(bar(140), 2)) == "pixels"
    assert check(bar(60), padded(bar(60), 2)) is None


def test_a_crop_of_a_framed_flag_that_keeps_its_pixels_is_found_whatever_its_trim_box():
    """A 44x30 flag with a one-pixel frame (its trim box: inside the frame, 42x28) cut to
    41x28, which takes the frame off: the cut's border is the flag's field, so its trim box
    is the 8x8 emblem, and trim boxes of two sizes would call it another drawing at another
    scale (`trim_scale`). Its pixels are found in the flag, which settles it first; the
    same cut of a flag with another emblem colour is not found."""

    def framed(emblem) -> Image.Image:
        img = Image.new("RGB", (44, 30), (65, 137, 221))
        d = ImageDraw.Draw(img)
        d.rectangle((18, 11, 25, 18), fill=emblem)
        d.rectangle((0, 0, 43, 29), outline=(20, 20, 20))
        return img

    flag_ = framed((255, 255, 255))
    crop, other = (x.crop((2, 1, 43, 29)) for x in (flag_, framed((250, 200, 0))))
    sa, sb, so = (bytes.fromhex(features(x).signature) for x in (flag_, crop, other))
    assert (parse_signature(sb).trimmed.width, parse_signature(sa).trimmed.width) == (8, 42)
    far = RULE.max_hamming + 2
    assert PairVerifier(RULE).check(sa, sb, far) is None
    assert PairVerifier(RULE).check(sa, so, far) == "trim_scale"


def test_an_icons_canvas_key_finds_its_jpeg_where_the_content_key_moves(monkeypatch):
    """The canvas key (``fingerprint.icon_keys``' second: the whole canvas's average hash)
    pairs only with canvas keys, within ``canvas_key_max_hamming``; a JPEG of a resize
    keeps it within a few bits, and with the content keys gone the pair is still found
    (by it) and its pixels accept it; with the canvas keys gone too (and crop keys pairing
    with crop keys) it is not."""
    ka = np.array([candidates.KEY_CANVAS] * 4 + [candidates.KEY_ICON])
    kc = np.array([candidates.KEY_CANVAS, candidates.KEY_CANVAS, candidates.KEY_ICON,
                   candidates.KEY_OWN, candidates.KEY_CANVAS])  # fmt: skip
    d = np.array([4, 5, 0, 0, 0])
    assert candidates.keys_pair(ka, kc, d, RULE).tolist() == [True, False, False, False, False]
    assert not candidates.keys_pair(ka[:1], kc[:1], d[:1], replace(RULE, verify=False))[0]
    copy = on_white(cross().resize((22, 22), Image.Resampling.LANCZOS))
    fa, fb, fo = features(cross()), features(copy, "JPEG", quality=85), features(icon("x", 32))
    sa, sb = (parse_signature(bytes.fromhex(f.signature)) for f in (fa, fb))
    canvas = [fingerprint.icon_keys(x)[1] for x in (sa, sb)]
    assert hamming(*canvas) <= RULE.canvas_key_max_hamming
    white = sa.native[0] @ fingerprint.LUMA
    assert canvas[0] == fingerprint.average_hash(white)
    keys_of = fingerprint.icon_keys
    monkeypatch.setattr(candidates, "icon_keys", lambda sig: (0, keys_of(sig)[1], 0))
    rows = [row("a", fa), row("b", fb), row("c", fo)]
    decisions, _ = plan_dedup(rows, DedupSpec())
    assert decisions["b"].op == "near_dedup" and decisions["b"].survivor == "a"
    assert decisions.get("c") is None or decisions["c"].op is None
    monkeypatch.setattr(candidates, "icon_keys", lambda sig: (0, 0, 0))
    apart = replace(RULE, crop_to_crop_max_hamming=-1)
    decisions, _ = plan_dedup(rows, DedupSpec(), rule=apart)
    assert decisions.get("b") is None or decisions["b"].op is None


def test_a_transparent_icons_canvas_key_on_black_finds_its_straight_alpha_resize(monkeypatch):
    """A straight-alpha resize (OpenCV's of an RGBA array) draws the colour under alpha 0,
    black here, into a white ring's edges: on white the ring turns dark (its pHash 21 bits
    away, the content and canvas keys 40 and 24), on black it stays. The third icon key
    (``fingerprint.icon_keys``: the canvas on black, of a transparent icon only) pairs the
    two within ``canvas_key_max_hamming``, and the resize is found by its pixels; without
    that key no key pairs them."""
    import cv2

    ring = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    ImageDraw.Draw(ring).ellipse((2, 2, 29, 29), outline=(250, 250, 250, 255), width=3)
    ImageDraw.Draw(ring).line((8, 16, 23, 16), fill=(240, 240, 240, 255), width=2)
    rgba = cv2.resize(np.asarray(ring, np.float32), (19, 19), interpolation=cv2.INTER_CUBIC)
    resized = Image.fromarray(np.rint(np.clip(rgba, 0, 255)).astype(np.uint8), "RGBA")
    fa, fb = features(ring), features(resized)
    keys = [fingerprint.icon_keys(parse_signature(bytes.fromhex(f.signature))) for f in (fa, fb)]
    apart = [int(hamming(x, y)) for x, y in zip(*keys, strict=True)]
    assert apart[0] > RULE.icon_key_max_hamming and apart[1] > RULE.canvas_key_max_hamming
    assert apart[2] <= RULE.canvas_key_max_hamming
    assert hamming(int(fa.phash, 16), int(fb.phash, 16)) > RULE.max_hamming
    opaque = parse_signature(bytes.fromhex(features(on_white(ring)).signature))
    assert fingerprint.icon_keys(opaque)[2] == 0
    rows = [row("a", fa), row("b", fb)]
    decisions, _ = plan_dedup(rows, DedupSpec())
    assert decisions["b"].op == "near_dedup" and decisions["b"].survivor == "a"
    keys_of = fingerprint.icon_keys
    monkeypatch.setattr(candidates, "icon_keys", lambda sig: (*keys_of(sig)[:2], 0))
    decisions, _ = plan_dedup(rows, DedupSpec())
    assert decisions.get("b") is None or decisions["b"].op is None

"""Resizes and JPEGs of icons (pictures of at most 64 px, which carry their own pixels),
found by those pixels: one resized to the other's size by a common resampler
(premultiplied, on straight alpha, in linear light), or encoded as a JPEG, and the
screen in front of those trials."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
from dedup_helpers import RULE
from dedup_pictures import check, encoded, face, features, icon, on_white, padded
from PIL import Image, ImageDraw

from mindvl.data_engine.dedup import batch, compare, groups, pixels
from mindvl.data_engine.dedup.compare import PairVerifier
from mindvl.data_engine.dedup.fingerprint import parse_signature
from mindvl.data_engine.dedup.search import match_terms, terms


def test_a_resized_icon_far_in_the_phash_is_still_compared():
    """A small icon's pHash (its 32x32 resample is an upsample of simple content) moves 7-10
    bits under a resize or a JPEG (the second real set's Adwaita, elementary and Faenza
    icons), so two icons are held to a crop's sizes only beyond ``icon_crop_only_beyond``;
    larger pictures beyond ``crop_only_beyond``. A resize whose pixels are found
    (``pixels.resized_pixels_fit``) is one whatever its pHash; a nearest-neighbour resize,
    which no filter there reproduces, is held to the bound."""
    small, resize = icon(), icon().resize((29, 29), Image.Resampling.LANCZOS)
    nearest = icon().resize((29, 29), Image.Resampling.NEAREST)  # no filter reproduces it
    sa, sr, sb = (bytes.fromhex(features(x).signature) for x in (small, resize, nearest))
    assert PairVerifier(RULE).check(sa, sb, distance=8) is None
    assert PairVerifier(replace(RULE, icon_crop_only_beyond=6)).check(sa, sb, 8) == "crop_sizes"
    assert PairVerifier(replace(RULE, icon_crop_only_beyond=6)).check(sa, sr, 8) is None
    wide = replace(RULE, crop_only_beyond=9, icon_crop_only_beyond=7)  # a recipe's wider
    assert PairVerifier(wide).check(sa, sb, 8) is None  # bound holds for icons too
    big, resized = (x.resize((x.width * 4, x.height * 4), Image.Resampling.LANCZOS)
                    for x in (small, resize))  # fmt: skip
    sa, sb = (bytes.fromhex(features(x).signature) for x in (big, resized))
    assert PairVerifier(RULE).check(sa, sb, distance=8) == "crop_sizes"
    assert PairVerifier(RULE).check(sa, sb, distance=6) is None


def page_icon(short_line: int | None = None) -> Image.Image:
    """A 32 px document icon: a page of 1 px text lines (one shortened: another glyph) and a
    green badge."""
    img = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rectangle((5, 1, 26, 30), fill=(250, 250, 250, 255), outline=(110, 110, 110, 255))
    for i, y in enumerate(range(5, 27, 3)):
        d.line((8, y, 14 if i == short_line else 23, y), fill=(70, 70, 70, 255))
    d.ellipse((17, 17, 30, 30), fill=(40, 140, 60, 255), outline=(20, 80, 30, 255))
    return img


def test_a_strong_downscale_of_an_icon_is_found_by_its_pixels(monkeypatch):
    """A 32 px icon of thin lines resized to 18 px (alpha kept): the 48x48 thumbnails of the
    two (an upsample of each) disagree, but the larger's own pixels resized to 18 px by a
    common filter are the smaller's (``pixels.resized_pixels_fit``). A look-alike whose
    one line is shorter, resized the same way, moves more pixels than the bound and stays
    apart."""
    large = page_icon()
    for how in (Image.Resampling.LANCZOS, Image.Resampling.BILINEAR):
        assert check(large, large.resize((18, 18), how)) is None
    other = page_icon(short_line=3).resize((18, 18), Image.Resampling.LANCZOS)
    assert check(large, other) == "gray"
    sigs = [parse_signature(bytes.fromhex(features(x).signature)) for x in (large, other)]
    assert not pixels.resized_pixels_fit(*sigs, RULE)
    monkeypatch.setattr(compare, "resized_pixels_fit", lambda a, b, rule: False)
    assert check(large, large.resize((18, 18), Image.Resampling.LANCZOS)) == "gray"


def test_icons_are_compared_resized_only_where_a_resize_explains_their_sizes():
    """One factor for both sides (to a pixel's rounding), down to ``resize_min_scale``: a
    4 px picture beside a 20 px one is no resize the pixels could check (any two simple
    drawings agree at 4 px)."""
    sizes = [((32, 32), (18, 18)), ((44, 30), (27, 18)), ((16, 11), (30, 20)),
             ((32, 32), (18, 20)), ((20, 20), (4, 4)), ((48, 48), (48, 48)), ((48, 48), (40, 40))]  # fmt: skip
    a, b = (np.array([s[i] for s in sizes]) for i in (0, 1))
    native = np.array([True] * 6 + [False])
    got = pixels.resized_icons(a, b, native, np.ones(len(sizes), bool), RULE)
    assert got.tolist() == [True, True, True, False, False, False, False]


def test_a_resize_far_in_the_phash_is_screened_by_its_pixels_not_its_sizes():
    """The batch screen drops far pairs without a crop's sizes, except two icons whose sizes
    a resize explains: their pixels decide (``first_failing_check`` looks for them before
    the sizes), so the screen never rejects a pair the comparison accepts."""
    small = icon()
    resize, squeezed = (
        small.resize(size, Image.Resampling.LANCZOS) for size in ((29, 29), (29, 40))
    )
    sigs = [bytes.fromhex(features(x).signature) for x in (small, resize, squeezed)]
    tight = replace(RULE, icon_crop_only_beyond=6)
    assert batch.screen_pairs(sigs, [0, 0], [1, 2], [8, 8], tight).tolist() == [True, False]
    assert PairVerifier(tight).check(sigs[0], sigs[1], 8) is None
    assert PairVerifier(tight).check(sigs[0], sigs[2], 8) == "crop_sizes"


def test_a_jpeg_of_an_icon_is_found_by_encoding_the_icon_as_a_jpeg(monkeypatch):
    """A JPEG of a transparent icon at its own size (quality 83, none of
    ``pixels.JPEG_QUALITIES``): ringing and chroma bleed move more than 5% of the icon's
    content by more than 32 levels, so its own pixels reject it; the icon on white, encoded
    as a JPEG at the nearest of those qualities, is the copy pixel for pixel. So is a JPEG
    of the icon resized to 20 px, once the resize is encoded too. A JPEG of a look-alike
    (one line shorter) is not, at its own size or resized."""
    smile = face((240, 160, 20))
    small = on_white(smile.resize((20, 20), Image.Resampling.LANCZOS))
    page, other = page_icon(), page_icon(short_line=3)
    raw = {name: bytes.fromhex(features(img, fmt, **kw).signature)
           for name, img, fmt, kw in (
               ("smile", smile, "PNG", {}),
               ("copy", on_white(smile), "JPEG", {"quality": 83}),
               ("resized", small, "JPEG", {"quality": 87}),
               ("page", page, "PNG", {}),
               ("other", on_white(other), "JPEG", {"quality": 83}),
               ("other_resized", on_white(other.resize((20, 20))), "JPEG", {"quality": 87}))}  # fmt: skip
    sigs = {name: parse_signature(sig) for name, sig in raw.items()}
    assert PairVerifier(RULE).check(raw["smile"], raw["copy"]) is None
    assert pixels.resized_pixels_fit(sigs["smile"], sigs["resized"], RULE)
    assert not pixels.reencoded(sigs["page"], sigs["other"], RULE)
    assert not pixels.resized_pixels_fit(sigs["page"], sigs["other_resized"], RULE)
    monkeypatch.setattr(pixels, "JPEG_QUALITIES", ())
    assert PairVerifier(RULE).check(raw["smile"], raw["copy"]) == "pixels"
    assert not pixels.resized_pixels_fit(sigs["smile"], sigs["resized"], RULE)


def test_a_low_quality_jpeg_of_an_icon_is_found_at_the_nearest_quality(monkeypatch):
    """JPEGs of an icon at its own size at qualities 43 and 57 (between those of
    ``pixels.JPEG_QUALITIES``, which go down to 40): the icon encoded at the nearest is the
    copy pixel for pixel. Tried at 75-95 only, neither is found. A look-alike's JPEG at 43
    (one line shorter) is not."""
    smile, page, other = face((240, 160, 20)), page_icon(), page_icon(short_line=3)
    raw = {name: bytes.fromhex(features(img, fmt, **kw).signature)
           for name, img, fmt, kw in (
               ("smile", smile, "PNG", {}),
               ("q43", on_white(smile), "JPEG", {"quality": 43}),
               ("q57", on_white(smile), "JPEG", {"quality": 57}),
               ("page", page, "PNG", {}),
               ("other", on_white(other), "JPEG", {"quality": 43}))}  # fmt: skip
    verifier = PairVerifier(RULE)
    assert verifier.check(raw["smile"], raw["q43"]) is None
    assert verifier.check(raw["smile"], raw["q57"]) is None
    assert verifier.check(raw["page"], raw["other"]) is not None
    monkeypatch.setattr(pixels, "JPEG_QUALITIES", (75, 80, 85, 90, 95))
    assert PairVerifier(RULE).check(raw["smile"], raw["q43"]) is not None
    assert PairVerifier(RULE).check(raw["smile"], raw["q57"]) is not None


def test_the_resize_screen_skips_far_pairs_and_is_a_screen():
    """``resize_screen_levels`` spares the filter and JPEG trials for two icons whose mean
    levels are far apart after one bicubic resize; ``unscreened()`` turns it off, like the
    rule's other screens (the real sets and kit seeds: no decision changes)."""
    large = page_icon()
    small, other = (
        x.resize((18, 18), Image.Resampling.LANCZOS) for x in (large, face((60, 110, 190)))
    )
    sigs = [parse_signature(bytes.fromhex(features(x).signature)) for x in (large, small, other)]
    assert pixels._mean_apart(sigs[0], sigs[2]) > RULE.resize_screen_levels
    assert pixels._mean_apart(sigs[0], sigs[1]) < RULE.resize_screen_levels
    assert pixels.resized_pixels_fit(sigs[0], sigs[1], RULE)
    strict = replace(RULE, resize_screen_levels=0.0)
    assert not pixels.resized_pixels_fit(sigs[0], sigs[1], strict)
    assert pixels.resized_pixels_fit(sigs[0], sigs[1], strict.unscreened())


def test_a_straight_alpha_resize_by_opencv_is_found_by_its_pixels(monkeypatch):
    """``cv2.resize`` on an RGBA array resizes colour and alpha apart (straight alpha, no
    antialiasing for its cubic), so the colour under alpha 0 bleeds into the edges and no
    Pillow filter reproduces it; ``pixels.resized_pixels_fit`` tries OpenCV's resamplers,
    premultiplied and on straight alpha with that colour as black or white. The same resize
    of a look-alike (the other glyph) is not taken."""
    import cv2

    def cv_resized(img: Image.Image) -> Image.Image:
        x = np.asarray(img, np.float32)  # colour under alpha 0 is black, as Pillow draws it
        out = cv2.resize(x, (34, 34), interpolation=cv2.INTER_CUBIC)
        return Image.fromarray(np.rint(np.clip(out, 0, 255)).astype(np.uint8), "RGBA")

    original, other = icon("!"), icon("x")
    sigs = [parse_signature(bytes.fromhex(features(x).signature))
            for x in (original, cv_resized(original), cv_resized(other))]  # fmt: skip
    assert pixels.resized_pixels_fit(sigs[0], sigs[1], RULE)
    assert not pixels.resized_pixels_fit(sigs[0], sigs[2], RULE)
    monkeypatch.setattr(pixels, "CV_RESIZES", ())
    monkeypatch.setattr(pixels, "STRAIGHT_RESIZES", ())
    assert not pixels.resized_pixels_fit(sigs[0], sigs[1], RULE)


def test_a_resize_in_linear_light_is_found_by_its_pixels(monkeypatch):
    """GIMP resizes in linear light: colour decoded from its gamma, weighted by alpha,
    resampled, encoded again. Thin dark lines come out lighter than Pillow's resize of the
    levels makes them; ``pixels.resized_pixels_fit`` also resizes in linear light (with
    the sRGB curve; here a plain 2.2 gamma and Pillow's Hamming filter, which it does not
    try). The same resize of a look-alike (one line shorter) is not taken."""

    def linear_resized(img: Image.Image) -> Image.Image:
        x = np.asarray(img, np.float64) / 255.0
        a = x[..., 3:]
        light = np.concatenate([x[..., :3] ** 2.2 * a, a], -1)
        bands = [Image.fromarray(light[..., i].astype(np.float32), "F") for i in range(4)]
        out = np.stack(
            [np.asarray(b.resize((20, 20), Image.Resampling.HAMMING)) for b in bands], -1
        )
        alpha = out[..., 3:]
        colour = np.where(alpha > 0, out[..., :3] / np.maximum(alpha, 1e-9), 0.0) ** (1 / 2.2)
        rgba = np.concatenate([colour, alpha], -1) * 255
        return Image.fromarray(np.rint(rgba).astype(np.uint8), "RGBA")

    original, other = page_icon(), page_icon(short_line=3)
    sigs = [parse_signature(bytes.fromhex(features(x).signature))
            for x in (original, linear_resized(original), linear_resized(other))]  # fmt: skip
    assert pixels.resized_pixels_fit(sigs[0], sigs[1], RULE)
    assert not pixels.resized_pixels_fit(sigs[0], sigs[2], RULE)
    monkeypatch.setattr(pixels, "LINEAR_FILTERS", ())
    assert not pixels.resized_pixels_fit(sigs[0], sigs[1], RULE)


def document(size: int, step: int, lines: tuple[int, int] = (8, 23)) -> Image.Image:
    """A document icon drawn at its own size, as a theme draws each size apart: a page, text
    lines every ``step`` px from ``lines[0]`` to ``lines[1]`` (in 32ths), a badge."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    at = [round(v * size / 32) for v in (5, 1, 26, 30, *lines, 5, 27, 17)]
    d.rectangle(at[:4], fill=(250, 250, 250, 255), outline=(110, 110, 110, 255))
    for y in range(at[6], at[7], step):
        d.line((at[4], y, at[5], y), fill=(70, 70, 70, 255))
    d.ellipse((at[8], at[8], at[3], at[3]), fill=(40, 140, 60, 255), outline=(20, 80, 30, 255))
    return img


def test_two_sizes_no_resize_reproduces_are_held_to_a_tighter_gray_bound():
    """Two icons whose sizes a resize explains, but whose pixels no resize reproduces, are
    left to their gray thumbnails and held there to ``resized_unfit_max_p99`` (0.45, not
    ``max_p99`` 0.5): a document drawn at 48 px and at 32 px with its lines redrawn
    (another theme's drawing of the icon; on real set a, Tango's and gnome's
    ``mail-mark-junk`` come within 0.45-0.49) is split by it, while a pad of a resized
    copy, which no resize alone reproduces either, is still found. A plain resize is
    found by its pixels whatever the bound."""
    big = document(48, 3)
    redrawn, copy = document(32, 2, lines=(7, 22)), padded(big.resize((36, 36)), 2)
    raw = [bytes.fromhex(features(x).signature) for x in (big, redrawn, copy)]
    sigs = [parse_signature(x) for x in raw]
    assert not pixels.resized_pixels_fit(sigs[0], sigs[1], RULE)
    p99 = match_terms(*(terms(s.pixels()) for s in sigs[:2])).p99
    assert RULE.resized_unfit_max_p99 < p99 < RULE.max_p99
    assert PairVerifier(RULE).check(raw[0], raw[1], 4) == "gray"
    assert (
        PairVerifier(replace(RULE, resized_unfit_max_p99=p99 + 0.01)).check(raw[0], raw[1], 4)
        is None
    )
    assert PairVerifier(RULE).check(raw[0], raw[2], 4) is None
    tight = replace(RULE, resized_unfit_max_p99=0.0)
    assert PairVerifier(tight).check(raw[0], raw[2], 4) == "gray"
    resized = bytes.fromhex(features(big.resize((32, 32), Image.Resampling.LANCZOS)).signature)
    assert PairVerifier(tight).check(raw[0], resized, 4) is None


def test_a_member_goes_with_the_survivor_its_pixels_are_found_in():
    """A JPEG of a resized icon is found by its pixels in its original (``closeness`` 0 ...),
    not in a look-alike (1 ...). In a star, a member that two survivors the rule tells apart
    both accept goes with the one its pixels are found in, even when the other's thumbnail
    is closer (mate's resized JPEG of ``software-update-available`` beside gnome's padded
    icon on real set a); found in both or neither, the clearly closer thumbnail decides."""
    page, other = page_icon(), page_icon(short_line=3)
    jpeg = Image.open(io.BytesIO(encoded(on_white(page.resize((20, 20), Image.Resampling.LANCZOS)),
                                         "JPEG", quality=87)))  # fmt: skip
    raw = [bytes.fromhex(features(x).signature) for x in (page, other, jpeg)]
    verifier = PairVerifier(RULE)
    assert verifier.closeness(raw[2], raw[0])[0] == 0
    assert verifier.closeness(raw[2], raw[1])[0] == 1

    class Stub:  # the survivors "a" and "b" apart, the member "m" accepted by both
        rule = RULE

        def __init__(self, close: dict[str, tuple[int, float]]) -> None:
            self.close = close

        def agree(self, x: bytes, y: bytes) -> bool:
            return {x, y} != {b"a", b"b"}

        def closeness(self, x: bytes, y: bytes) -> tuple[int, float]:
            return self.close[(x + y).decode().replace("m", "")]

    sig_of, pairs = {k: k.encode() for k in "abm"}, {"m": {"a", "b"}}
    stars = lambda close: groups.star_members(list("abm"), sig_of, Stub(close), pairs)  # noqa: E731
    assert stars({"a": (1, 0.25), "b": (0, 0.30)}) == [["b", "m"]]  # found in b
    assert stars({"a": (0, 0.25), "b": (1, 0.19)}) == [["a", "m"]]  # found in a
    assert stars({"a": (1, 0.25), "b": (1, 0.19)}) == [["b", "m"]]  # b closer by > 0.05
    assert stars({"a": (0, 0.22), "b": (0, 0.19)}) == [["a", "m"]]  # within the margin

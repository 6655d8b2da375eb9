"""Dedup of two icons of one size, compared by their own pixels (``pixels.icons_differ``):
a recolour, a turned brow, an outline's alpha, a move of the whole drawing, a small drawing
on a large canvas, and re-encodes told apart by encoding (a JPEG, a lossy WebP, a palette
reduction). Pads, crops and keys of icons: ``test_dedup_icons.py``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from dedup_helpers import RULE
from dedup_pictures import check, face, features, icon, on_white, pixel_icon
from PIL import Image, ImageDraw

from mindvl.data_engine.dedup import batch, compare, pixels
from mindvl.data_engine.dedup.compare import PairVerifier
from mindvl.data_engine.dedup.fingerprint import parse_signature


def tinted(img: Image.Image, levels: int) -> Image.Image:
    """``img`` with ``levels`` added to every colour channel (alpha kept)."""
    x = np.asarray(img).astype(np.int16)
    x[..., :3] = np.clip(x[..., :3] + levels, 0, 255)
    return Image.fromarray(x.astype(np.uint8), "RGBA")


def test_a_recoloured_icon_of_one_size_is_another_icon(monkeypatch):
    """A folder icon 40 levels lighter in every channel (oxygen's folder-blue beside
    inode-directory): its gray thumbnail's levels are fitted away and its chroma is the
    same, so only the icon's own pixels tell the two apart (``pixels.icons_differ``); 20
    levels lighter is within ``icon_levels`` and stays one picture."""
    blue = face((60, 110, 190))
    assert check(blue, tinted(blue, 20)) is None
    assert check(blue, tinted(blue, 40)) == "pixels"
    monkeypatch.setattr(compare, "icons_differ", lambda a, b, rule: False)
    assert check(blue, tinted(blue, 40)) is None  # what the thumbnails alone decide


def emoticon(inner: float) -> Image.Image:
    """A 24 px transparent emoticon, drawn at 4x and reduced as icons are rendered, its
    brows' inner ends at row ``inner`` (their outer ends at row 7)."""
    k, n = 4, 96
    img = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((k, k, n - k, n - k), fill=(250, 190, 40, 255), outline=(150, 90, 20, 255), width=k)
    for cx in (8, 16):
        d.ellipse(((cx - 1.5) * k, 9 * k, (cx + 1.5) * k, 13 * k), fill=(70, 50, 30, 255))
    d.arc((6 * k, 12 * k, 18 * k, 20 * k), 20, 160, fill=(120, 40, 0, 255), width=k)
    for outer, x in ((5.5, 10), (18.5, 14)):
        d.line((outer * k, 7 * k, x * k, inner * k), fill=(80, 50, 20, 255), width=k)
    return img.resize((24, 24), Image.Resampling.LANCZOS)


def test_two_transparent_icons_a_turned_brow_apart_are_two_icons():
    """Pidgin's ``excited`` / ``sinister``: the brows turned. Every pixel the turn changes
    has one of its colour within a pixel in the other icon, so the share of content
    changed beyond a one-pixel shift is nil; but at their best whole move the two are over
    ``icon_max_levels`` apart where a brow crosses the face, and a re-rendered drawing (moved
    a pixel, a few levels lighter) is not. Opaque, one may be a JPEG, whose ringing exceeds
    that bound at a small icon's edges: the bound is asked of transparent pairs only."""

    def sig(img: Image.Image):
        return parse_signature(bytes.fromhex(features(img).signature))

    calm, cross = sig(emoticon(7)), sig(emoticon(8))
    assert pixels.icons_differ(calm, cross, RULE)
    assert not pixels.icons_differ(calm, cross, replace(RULE, icon_max_levels=255.0))
    placed, moved = (Image.new("RGBA", (26, 26), (0, 0, 0, 0)) for _ in range(2))
    placed.paste(emoticon(7), (1, 1))
    moved.paste(tinted(emoticon(7), 15), (2, 2))
    assert not pixels.icons_differ(sig(placed), sig(moved), RULE)
    assert not pixels.icons_differ(sig(on_white(emoticon(7))), sig(on_white(emoticon(8))), RULE)


def ringed(alpha: int) -> Image.Image:
    """The emoticon inside a white ring of opacity ``alpha``: the ring shows on black only."""
    ring = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
    ImageDraw.Draw(ring).ellipse((0, 0, 95, 95), outline=(255, 255, 255, alpha), width=6)
    return Image.alpha_composite(ring.resize((24, 24), Image.Resampling.LANCZOS), emoticon(7))


def test_two_transparent_icons_an_outlines_alpha_apart_are_two_icons():
    """Moka's two padlocks: one drawing, its outline's alpha up to 39 levels apart (visible
    on black only); here a white ring 30 levels apart. Neither is a JPEG (both keep alpha) nor a palette reduction of the other,
    so no encoding's noise needs room: held to ``transparent_levels`` /
    ``transparent_max_share`` they are two icons (under ``icon_levels`` / ``icon_max_share``
    they were one). The icon reduced to 32 or 64 colours by Pillow's octree (a function of
    its colours, ``pixels.palette_reduced``) keeps the looser bounds and stays one."""

    def sig(img: Image.Image):
        return parse_signature(bytes.fromhex(features(img).signature))

    faint, strong = sig(ringed(60)), sig(ringed(90))
    loose = replace(RULE, transparent_levels=RULE.icon_levels,
                    transparent_max_share=RULE.icon_max_share)  # fmt: skip
    assert pixels.icons_differ(faint, strong, RULE)
    assert not pixels.icons_differ(faint, strong, loose)
    assert not pixels.palette_reduced(faint, strong, RULE)
    assert not pixels.webp_of(faint, strong, RULE)  # a WebP keeps alpha as it was
    assert check(ringed(60), ringed(90)) == "pixels"
    for colours in (32, 64):
        reduced = ringed(60).quantize(colours, method=Image.Quantize.FASTOCTREE).convert("RGBA")
        assert pixels.palette_reduced(faint, sig(reduced), RULE)
        assert check(ringed(60), reduced) is None
    recoloured = sig(tinted(ringed(60), 8))  # one to one: not fewer colours
    assert not pixels.palette_reduced(faint, recoloured, RULE)


def test_a_lossy_webp_of_a_transparent_icon_is_found_by_encoding_the_icon(monkeypatch):
    """A lossy WebP keeps an icon's size and its alpha but codes its colour at half
    resolution: at a small icon's coloured edges it moves more pixels, further, than
    ``icons_differ`` allows a copy. The icon encoded as a WebP is the copy
    (``pixels.webp_of``), at the quality it was saved at or between two of
    ``WEBP_QUALITIES`` and at any effort; an emoticon with its brows turned, or the icon
    in another shade, saved as a WebP, is no WebP of the first."""

    def sig(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
        return bytes.fromhex(features(img, fmt, **kw).signature)

    verifier = PairVerifier(RULE)
    disc, calm = icon("!"), emoticon(7)
    for img in (disc, calm):
        for quality, method in ((50, 4), (62, 0), (83, 6)):
            webp = sig(img, "WEBP", quality=quality, method=method)
            assert verifier.check(sig(img), webp) is None
    turned = parse_signature(sig(emoticon(8), "WEBP", quality=75))
    assert not pixels.webp_of(parse_signature(sig(calm)), turned, RULE)
    blue = face((60, 110, 190))  # and a WebP of it 34 levels lighter is another icon
    assert verifier.check(sig(blue), sig(tinted(blue, 34), "WEBP", quality=75)) == "pixels"
    monkeypatch.setattr(pixels, "WEBP_QUALITIES", ())
    assert PairVerifier(RULE).check(sig(disc), sig(disc, "WEBP", quality=50)) == "pixels"


def moved_changes_share(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return pixels._moved_changes(x, y, 2, RULE.icon_levels).mean((-2, -1))


def test_an_icon_moved_as_a_whole_is_found_at_its_move():
    """Per whole move of up to 2 px: an icon moved by (1, -2) px changes no
    pixel at that move (index 2 + move) but most at moves far from it."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (48, 48, 3)).astype(np.float32)
    y = np.roll(x, (1, -2), (0, 1))  # y[i, j] = x[i - 1, j + 2]
    share = moved_changes_share(x, y)
    assert share.shape == (5, 5)
    assert share[3, 0] < 0.07 and share[0, 4] > 0.8  # edges wrap: a few pixels differ


def test_a_small_drawing_on_a_large_canvas_is_judged_on_the_drawing():
    """Two 64 px transparent icons whose 26x18 drawing (11% of the canvas) differs in a
    10x8 panel of another colour: 2% of the canvas, 17% of the drawing. The share of
    changed pixels is counted against the content (pixels away from the ground), so the
    pair is two icons (`pixels`); the same icon drawn again is one."""

    def gadget(colour) -> Image.Image:
        img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
        d = ImageDraw.Draw(img)
        d.rectangle((19, 23, 44, 40), fill=(90, 90, 100, 255))
        d.rectangle((27, 28, 36, 35), fill=colour)
        return img

    magenta = gadget((200, 40, 160, 255))
    assert check(magenta, gadget((60, 160, 60, 255))) == "pixels"
    assert check(magenta, gadget((200, 40, 160, 255))) is None


def test_two_icons_of_one_size_are_judged_by_their_pixels_whatever_their_phash():
    """A JPEG of an icon at its own size moves its pHash (a 32x32 upsample of simple
    content) by up to 38 bits on real set c, far beyond ``icon_crop_only_beyond``: two
    icons of one size are not held to a crop's sizes (nor their trim boxes to one scale),
    their own pixels decide, in the batch screen as in the per-pair checks. Another drawing
    of one size is still told apart by them; two pictures of one size too large to carry
    their pixels are held to a crop's sizes."""
    other = pixel_icon()
    ImageDraw.Draw(other).rectangle((2, 9, 7, 13), fill=(40, 160, 60, 255))  # an emblem
    big = pixel_icon().resize((96, 96), Image.Resampling.NEAREST)
    jpegs = [features(on_white(x), "JPEG", quality=75) for x in (pixel_icon(), big)]
    found = [bytes.fromhex(f.signature) for f in
             (features(pixel_icon()), jpegs[0], features(other), features(big), jpegs[1])]  # fmt: skip
    verifier = PairVerifier(RULE)
    assert verifier.check(found[0], found[1], distance=30) is None
    assert verifier.check(found[0], found[2], distance=30) not in (None, "crop_sizes")
    assert verifier.check(found[3], found[4]) is None
    assert verifier.check(found[3], found[4], distance=30) == "crop_sizes"
    kept = batch.screen_pairs(found, [0, 3], [1, 4], [30, 30], RULE)
    assert kept.tolist() == [True, False]


def test_an_icon_and_its_jpeg_of_one_size_are_found_by_encoding_it_first():
    """A light glyph on transparency, flattened on white and saved as a JPEG at quality 75
    at its own 16 px: on white its thumbnails have little contrast and the z-scoring
    magnifies the encode's noise past ``one_size_max_p99``, but the original encoded as a
    JPEG is the copy (``pixels.jpeg_of``), tried first for two icons of one size of at
    least ``jpeg_min_pixels``; below that bound the thumbnails decide (``gray``). Only the
    encoded trial counts there: a flag and the same flag with a one-pixel star fit as they
    are, and are no JPEG of each other."""
    glyph = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    ImageDraw.Draw(glyph).line((4, 4, 11, 11), fill=(225, 225, 225, 255), width=2)
    ImageDraw.Draw(glyph).line((11, 4, 4, 11), fill=(225, 225, 225, 255), width=2)
    found = [bytes.fromhex(f.signature)
             for f in (features(glyph), features(on_white(glyph), "JPEG", quality=75))]  # fmt: skip
    assert batch.verify_pairs(found, [0], [1], [0], RULE).tolist() == [True]
    assert PairVerifier(replace(RULE, jpeg_min_pixels=257)).check(*found) == "gray"
    tricolour = Image.new("RGB", (22, 15), (0, 0, 0))
    ImageDraw.Draw(tricolour).rectangle((0, 5, 21, 9), fill=(255, 255, 255))
    ImageDraw.Draw(tricolour).rectangle((0, 10, 21, 14), fill=(0, 122, 61))
    ImageDraw.Draw(tricolour).polygon([(0, 0), (9, 7), (0, 14)], fill=(206, 17, 38))
    starred = tricolour.copy()
    starred.putpixel((3, 7), (255, 255, 255))
    flags = [parse_signature(bytes.fromhex(features(x).signature)) for x in (tricolour, starred)]
    assert pixels.reencoded(*flags, RULE) and not pixels.jpeg_of(*flags, RULE)

"""Dedup on clip-art-like pictures: transparency (RGBA, grey+alpha, palette with a
transparent index) in the exact key and on black, JPEG-on-white copies, flags and icons of
one layout, stars drawn near-identical by design, the trimmed and crop pHash keys, colours
compared at the crop. Icons compared by their own pixels: ``test_dedup_icons.py``."""

from __future__ import annotations

import io
import math
from dataclasses import replace

import numpy as np
from dedup_helpers import RULE
from dedup_pictures import check, encoded, face, features, flag, icon, on_white, padded, row
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup import compare, fingerprint
from mindvl.data_engine.dedup.candidates import hamming
from mindvl.data_engine.dedup.compare import PairVerifier
from mindvl.data_engine.dedup.decontaminate import EvalIndex
from mindvl.data_engine.dedup.fingerprint import parse_signature
from mindvl.data_engine.dedup.local import plan_dedup


def test_the_exact_key_sees_alpha_but_not_colour_under_alpha_zero() -> None:
    glyph = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    ImageDraw.Draw(glyph).rectangle((8, 8, 24, 24), fill=(255, 255, 255, 255))
    empty = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    # equal once flattened on white, different pictures
    sg, se = (parse_signature(bytes.fromhex(features(x).signature)) for x in (glyph, empty))
    assert (sg.gray, sg.size, sg.chroma.tolist()) == (se.gray, se.size, se.chroma.tolist())
    assert features(glyph).pixel_hash != features(empty).pixel_hash
    assert check(glyph, empty) == "levels"  # on black they differ (a quarter of it white)
    hidden = Image.new("RGBA", (32, 32), (90, 10, 200, 0))  # colour under alpha 0
    assert features(hidden).pixel_hash == features(empty).pixel_hash
    opaque = icon().convert("RGB").convert("RGBA")  # alpha all 255: the RGB picture
    assert features(opaque).pixel_hash == features(opaque.convert("RGB")).pixel_hash
    # palette with a transparent index and grey+alpha: the same pixels as RGBA
    pal = icon().convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    pal.info["transparency"] = 0
    pal = Image.open(io.BytesIO(encoded(pal)))  # a PNG with a tRNS entry
    assert pal.mode == "P" and "transparency" in pal.info
    assert features(pal).pixel_hash == features(pal.convert("RGBA")).pixel_hash
    la = icon().convert("LA")
    assert features(la).pixel_hash == features(la.convert("RGBA")).pixel_hash
    assert features(la).pixel_hash != features(la.convert("L")).pixel_hash


def test_a_transparent_icon_and_its_jpeg_on_white_copy_are_one_picture() -> None:
    img = icon()
    white = on_white(img)
    copy = Image.open(io.BytesIO(encoded(white.resize((40, 40), Image.Resampling.LANCZOS),
                                         "JPEG", quality=85)))  # fmt: skip
    assert check(img, copy) is None
    assert check(img.convert("LA"), copy.convert("L")) is None  # grey+alpha: the same


def test_pictures_alike_on_white_but_not_in_alpha_are_two_pictures() -> None:
    """A disc with a dark drop shadow and the same disc with a white glow: on white the glow
    is invisible and the shadow faint; on black the glow shows. Copies keep their alpha
    (resized, padded) and stay one picture; a copy flattened on white has no alpha to
    compare and stays one picture with either."""

    def disc(glow: bool) -> Image.Image:
        img = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
        d = ImageDraw.Draw(img)
        d.ellipse((2, 2, 45, 45), fill=(255, 255, 255, 200) if glow else (0, 0, 0, 0))
        d.ellipse((8, 8, 39, 39), fill=(40, 90, 200, 255))
        return img

    shadow, glow = disc(False), disc(True)
    assert check(shadow, glow) == "levels"  # the glow brightens it on black
    assert parse_signature(bytes.fromhex(features(shadow).signature)).black is not None
    assert check(glow, glow.resize((40, 40), Image.Resampling.LANCZOS)) is None
    assert check(glow, padded(glow, 2)) is None
    white = on_white(glow)
    assert parse_signature(bytes.fromhex(features(white).signature)).black is None
    assert check(glow, white) is None and check(shadow, white) is None


def test_icons_that_differ_in_one_small_glyph_are_two_pictures() -> None:
    assert check(icon("!"), icon("x")) is not None


def test_flags_of_one_stripe_layout_are_two_pictures() -> None:
    france = ((0, 35, 149), (255, 255, 255), (237, 41, 57))
    assert check(flag(france), flag(((0, 146, 70), (255, 255, 255), (206, 43, 55)))) == "colour"
    assert check(flag(france), flag(france, emblem=True)) == "one_size"
    emblem = flag(france, emblem=True)
    assert check(emblem, emblem.convert("RGB").resize((240, 160))) is None
    jpeg = Image.open(io.BytesIO(encoded(emblem.convert("RGB"), "JPEG", quality=80)))
    assert check(emblem, jpeg) is None  # one size: a re-encode is not a difference


def star(points: int, size: int = 400) -> Image.Image:
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    corners = [
        (
            size / 2 + r * math.cos(math.pi * i / points),
            size / 2 + r * math.sin(math.pi * i / points),
        )
        for i in range(2 * points)
        for r in [size * (0.48 if i % 2 == 0 else 0.40)]
    ]
    ImageDraw.Draw(img).polygon(corners, fill=(230, 180, 0, 255), outline=(120, 80, 0, 255))
    return img


def test_star_polygons_of_90_and_91_points_are_one_picture_by_design() -> None:
    """The documented decision (docs/DEDUP.md): variants finer than the 48x48 signature
    sees are one picture; coarser ones are told apart."""
    assert check(star(90), star(91)) is None
    # one size: the gray thumbnails' bound for pictures compared without resampling
    assert check(star(30), star(31)) == "gray"
    assert check(star(12), star(13)) == "gray"


def test_a_padded_icon_is_found_by_its_trimmed_phash() -> None:
    """A transparent margin moves the whole picture's pHash past the bound; the pHash of the
    picture trimmed to its content does not move, and the pair is compared and merged."""
    a, b = icon("x"), padded(icon("x"), 3)
    fa, fb = features(a), features(b)
    sa, sb = (parse_signature(bytes.fromhex(f.signature)) for f in (fa, fb))
    distance = int(hamming(int(fa.phash, 16), int(fb.phash, 16)))
    assert distance > RULE.max_hamming
    assert hamming(sa.trim_phash, sb.trim_phash) <= RULE.max_hamming
    sigs = bytes.fromhex(fa.signature), bytes.fromhex(fb.signature)
    assert PairVerifier(RULE).check(*sigs, distance) is None
    decisions, stats = plan_dedup([row("a", fa), row("b", fb)], DedupSpec())
    assert stats.near_candidate_pairs >= 1
    assert {d.op for d in decisions.values()} == {None, "near_dedup"}
    # decontamination looks both keys up too: the padded copy of an eval icon is caught
    index = EvalIndex([(fa.phash, fa.signature, fa.pixel_hash, fa.information)], RULE)
    assert index.match_row(row("b", fb)) == 0
    assert index.match_row(row("c", features(icon("!")))) is None


def diamond(canvas: int, side: int) -> Image.Image:
    img = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    c, r = canvas / 2, side / 2
    ImageDraw.Draw(img).polygon([(c, c - r), (c + r, c), (c, c + r), (c - r, c)], fill="black")
    return img


def test_one_shape_drawn_at_two_scales_is_not_a_pad_of_itself(monkeypatch) -> None:
    """Two diamonds of 64 and 60 px on 74 and 80 px canvases (as the kit draws two shapes):
    the grid search finds a crop that fits, but a pad or crop keeps the content's pixels,
    so the trim boxes of a pair found only by the trimmed key must agree. With the boxes
    taken to agree, the pair can only be a pad or crop, and the match at the sizes told
    rejects it."""
    fa, fb = features(diamond(74, 64)), features(diamond(80, 60))
    far = RULE.max_hamming + 1
    sigs = bytes.fromhex(fa.signature), bytes.fromhex(fb.signature)
    assert PairVerifier(RULE).check(*sigs, far) == "trim_scale"
    loose = PairVerifier(replace(RULE, trim_max_change=1.0))
    assert loose.check(*sigs, far) == "gray"
    monkeypatch.setattr(compare, "only_pad_or_crop", lambda a, b, rule: False)
    assert loose.check(*sigs, far) is None
    pad = bytes.fromhex(features(padded(diamond(74, 64), 3)).signature)
    assert PairVerifier(RULE).check(sigs[0], pad, far) is None


def banner(emblem: str) -> Image.Image:
    """A flag that fills its canvas: three horizontal stripes and an emblem in the hoist
    (a disc or a square), so it has no border to trim."""
    img = Image.new("RGB", (240, 160), (200, 30, 40))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 53, 239, 106), fill=(255, 255, 255))
    d.rectangle((0, 107, 239, 159), fill=(20, 60, 150))
    if emblem == "disc":
        d.ellipse((24, 56, 72, 104), fill=(240, 190, 0))
    else:
        d.rectangle((28, 60, 68, 100), fill=(240, 190, 0))
    return img


def test_a_crop_of_a_full_canvas_flag_is_found_by_its_crop_keys() -> None:
    """A 90% crop of a picture that fills its canvas moves both its pHash and its trimmed
    pHash past the bound; the crop pHashes of the original meet the crop's own pHash, and
    the pair is compared and merged. A flag of the same stripes with another emblem is not."""
    flag_, other = banner("disc"), banner("square")
    crop = flag_.crop((7, 11, 223, 155))  # 90% of each side, off-centre
    fa, fb, fo = features(flag_), features(crop), features(other)
    sa, sb = (parse_signature(bytes.fromhex(f.signature)) for f in (fa, fb))
    own = int(fb.phash, 16)
    assert hamming(int(fa.phash, 16), own) > RULE.max_hamming
    assert hamming(sa.trim_phash, sb.trim_phash) > RULE.max_hamming
    assert min(hamming(k, own) for k in sa.crops) <= RULE.crop_radius
    decisions, stats = plan_dedup([row("a", fa), row("b", fb), row("c", fo)], DedupSpec())
    assert decisions["b"].op == "near_dedup" and decisions["b"].survivor == "a"
    assert decisions.get("c") is None or decisions["c"].op is None
    index = EvalIndex([(fa.phash, fa.signature, fa.pixel_hash, fa.information)], RULE)
    assert index.match_row(row("b", fb)) == 0 and index.match_row(row("c", fo)) is None


def letter(ch: str) -> Image.Image:
    """A 100 px letter filling its canvas, as Scratch's letter costumes do."""
    img = Image.new("RGB", (100, 100), (255, 255, 255))
    font = ImageFont.load_default(size=120)
    ImageDraw.Draw(img).text((50, 50), ch, fill=(30, 60, 160), font=font, anchor="mm")
    return img


def test_a_crop_cutting_into_a_letter_is_found_by_two_crop_keys() -> None:
    """A 90% crop cutting into a letter that fills its canvas moves its pHash, and every
    crop key of the letter, beyond the radii of the letter's own pHash; a cut of each stays
    within ``crop_to_crop_max_hamming`` of the other's, and the rule accepts the pair at the
    distance it judges it at. Without crop keys pairing with crop keys the crop is kept.
    Another letter is not merged, and decontamination finds the crop the same way."""
    a, crop, other = letter("A"), letter("A").crop((6, 4, 96, 94)), letter("R")
    fa, fb, fo = features(a), features(crop), features(other)
    rows = [row("a", fa), row("b", fb), row("c", fo)]
    decisions, _ = plan_dedup(rows, DedupSpec())
    assert decisions["b"].op == "near_dedup" and decisions["b"].survivor == "a"
    assert decisions.get("c") is None or decisions["c"].op is None
    apart = replace(RULE, crop_to_crop_max_hamming=-1)
    decisions, _ = plan_dedup(rows, DedupSpec(), rule=apart)
    assert decisions.get("b") is None or decisions["b"].op is None
    index = EvalIndex([(fa.phash, fa.signature, fa.pixel_hash, fa.information)], RULE)
    assert index.match_row(row("b", fb)) == 0 and index.match_row(row("c", fo)) is None


def test_phash_is_imagehash_and_crop_keys_are_the_phashes_of_the_cuts(monkeypatch) -> None:
    """``phash_of`` is imagehash's pHash bit for bit (pictures from 9 to 512 px, noise and
    drawings). Without the box reduce a crop key is exactly the pHash of its cut; with it
    (the default) the keys of a detailed picture stay within two bits of those."""
    import imagehash

    rng = np.random.default_rng(5)
    noise = [rng.integers(0, 256, (int(rng.integers(9, 512)), int(rng.integers(9, 512))))
             for _ in range(20)]  # fmt: skip
    pictures = [Image.fromarray(x.astype(np.uint8), "L") for x in noise]
    pictures += [banner("disc").convert("L"), face((40, 120, 230)).convert("L")]
    for picture in pictures:
        assert fingerprint.phash_of(picture) == int(str(imagehash.phash(picture)), 16)
    img = banner("disc").convert("L")
    w, h = img.size
    cw, ch = round(w * fingerprint.CROP_KEEP), round(h * fingerprint.CROP_KEEP)
    cuts = [(round(ax * (w - cw)), round(ay * (h - ch))) for ax, ay in fingerprint.CROP_ANCHORS]
    plain = [int(str(imagehash.phash(img.crop((x, y, x + cw, y + ch)))), 16) for x, y in cuts]
    reduced = fingerprint.crop_keys(img)
    monkeypatch.setattr(fingerprint, "CROP_KEY_GAP", None)
    assert list(fingerprint.crop_keys(img)) == plain
    assert all(hamming(a, b) <= 2 for a, b in zip(reduced, plain, strict=True))


def test_colours_of_a_padded_copy_are_compared_at_the_crop():
    """A 3 px transparent pad moves every 8x8 chroma cell's content by a third of a cell:
    compared as they are, a blue icon and its padded copy differ in colour (0.27 > 0.25);
    at the crop the gray search finds they agree, while the padded icon in a red of the
    same luminance still differs in colour. (At 96 px: no pixels of their own to compare.)"""
    blue, red = (face(c).resize((96, 96), Image.Resampling.NEAREST)
                 for c in ((40, 120, 230), (230, 60, 60)))  # fmt: skip
    assert check(blue, padded(blue, 6)) is None
    assert check(blue, padded(red, 6)) == "colour"


def test_a_pad_does_not_join_two_frames_the_rule_tells_apart_at_their_size() -> None:
    """A flag and the same flag with a small emblem (two frames of one drawing) differ at
    their own size (``one_size``), yet a pad of the plain one is accepted against both: a
    star around the pad keeps the plain flag, its closer member, and lets the other go (a
    survivor of its own). Real sets c and d: lincity's padded tiles beside their animation
    frames."""
    from mindvl.data_engine.dedup.groups import near_groups

    plain = flag([(0, 120, 60), (240, 240, 240), (200, 30, 40)], size=(270, 180)).convert("RGBA")
    framed = plain.copy()
    ImageDraw.Draw(framed).ellipse((128, 83, 142, 97), fill=(200, 160, 0))
    pad = padded(plain, 2)
    sig = {
        k: bytes.fromhex(features(x).signature)
        for k, x in zip("abc", (pad, plain, framed), strict=True)
    }
    assert check(framed, plain) == "one_size"
    assert check(pad, plain) is None and check(pad, framed) is None
    verifier = PairVerifier(RULE)  # the plain flag is the clearly closer member
    assert (
        verifier.closeness(sig["b"], sig["a"])[1] + 0.03 < verifier.closeness(sig["c"], sig["a"])[1]
    )
    assert near_groups([("a", "b"), ("a", "c")], sig, RULE) == {"a": "a", "b": "a"}


WHITE = (255, 255, 255, 255)


def white_drawing(glyph: str, size: int = 96) -> Image.Image:
    """A white drawing on a transparent canvas (a control's decor: blank on white)."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((8, 8, size - 9, size - 9), outline=WHITE, width=size // 12)
    a, b = size // 3, 2 * size // 3
    if glyph == "|":
        d.rectangle((size // 2 - 4, 4, size // 2 + 4, size // 2), fill=WHITE)
    else:
        d.line((a, a, b, b), fill=WHITE, width=8)
        d.line((a, b, b, a), fill=WHITE, width=8)
    return img


def test_a_white_drawing_on_transparency_is_compared_on_black() -> None:
    """On white a white drawing is blank, so the crop found there means nothing: two such
    pictures are compared on black, where a transparent pad of one is found and another
    glyph is not."""
    power = white_drawing("|")
    gray = parse_signature(bytes.fromhex(features(power).signature)).gray
    assert np.ptp(np.frombuffer(gray, np.uint8)) == 0
    assert check(power, padded(power, 6)) is None  # "alpha" at the crop found on white
    assert check(power, power.resize((72, 72), Image.Resampling.LANCZOS)) is None
    assert check(power, white_drawing("x")) is not None
    assert check(power, padded(white_drawing("x"), 6)) is not None


def test_flat_veils_of_other_levels_are_two_pictures() -> None:
    """The gray comparison fits levels (a brightness change is no difference), which makes
    any two flat pictures one; their mean levels, on each ground both carry, may differ by
    at most ``max_level_shift``: a white veil and a grey one, or two white veils of other
    opacities, are two pictures, while a picture a little brighter is still its copy."""
    white25, white28, white63 = (
        Image.new("RGBA", (220, 220), (255, 255, 255, a)) for a in (64, 70, 160)
    )
    black50 = Image.new("RGBA", (220, 220), (0, 0, 0, 128))
    assert check(black50, white25) == "levels"  # on white 128 levels apart
    assert check(white63, white25) == "levels"  # one on white, 96 levels apart on black
    assert check(white25, white28) is None  # 6 levels apart on black
    photo = flag(((0, 35, 149), (255, 255, 255), (237, 41, 57)), emblem=True).convert("RGB")
    assert check(photo, ImageEnhance.Brightness(photo).enhance(0.92)) is None


def test_white_drawings_are_keyed_on_black_and_do_not_crowd() -> None:
    """Blank on white, every white drawing would have one pHash (and one of each crop key):
    a build of them would pair them all in one crowded bucket. Their keys are taken on
    black, where they differ, so unrelated white drawings are not even candidates, while a
    pad of one is still found."""
    rng = np.random.default_rng(0)
    drawings = []
    for _ in range(120):
        img = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
        d = ImageDraw.Draw(img)
        for x, y, w, h in rng.integers((0, 0, 8, 8), (80, 80, 40, 40), size=(4, 4)).tolist():
            d.ellipse((x, y, x + w, y + h), outline=WHITE, width=4)
        drawings.append(img)
    found = [features(x) for x in drawings]
    assert len({f.phash for f in found}) == len(found)
    rows = [row(f"w{i}", f) for i, f in enumerate(found)]
    rows.append(row("pad", features(padded(drawings[0], 6))))
    decisions, stats = plan_dedup(rows, DedupSpec())
    assert stats.near_candidate_pairs < 20  # all 7,260 pairs when keyed on white
    merged = {frozenset((k, d.survivor)) for k, d in decisions.items() if d.op}
    assert merged == {frozenset(("pad", "w0"))}

"""The near rule's checks beyond the gray thumbnail: the signature layout, the chroma rule,
the size rules and content boxes (dedup/compare.py, dedup/fingerprint.py)."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from dedup_helpers import RULE, agree
from dedup_pictures import features
from PIL import Image, ImageDraw, ImageEnhance

from mindvl.data_engine.dedup import batch, compare
from mindvl.data_engine.dedup.compare import PairVerifier
from mindvl.data_engine.dedup.fingerprint import (
    HEAD,
    TrimmedContent,
    pack_signature,
    parse_signature,
)
from mindvl.data_engine.dedup.search import Match, crop_sized, match_terms, terms
from mindvl.data_engine.ops.image_decode import image_features


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def sig(img: Image.Image) -> bytes:
    return bytes.fromhex(image_features(png(img)).signature)


def gray_match(a: bytes, b: bytes) -> Match:
    """The crop search of two signatures' gray thumbnails alone."""
    return match_terms(*(terms(parse_signature(x).pixels()) for x in (a, b)))


def chroma_of(a, b) -> float:
    x, y = (parse_signature(s).chroma.reshape(1, -1) for s in (a, b))
    return float(compare.chroma_differences(x, y, RULE)[0])


def scene(fill=(200, 40, 40), size=(320, 240), at=(120, 80)) -> Image.Image:
    img = Image.new("RGB", size, (235, 235, 235))
    draw = ImageDraw.Draw(img)
    draw.rectangle((20, 20, 300, 40), fill=(60, 60, 60))
    x, y = at
    draw.ellipse((x, y, x + 90, y + 90), fill=fill)
    return img


def test_layout_round_trips_and_other_bytes_are_refused() -> None:
    gray = bytes(range(256)) * 9  # 48 * 48
    cbcr = bytes([100] * 64 + [160] * 64)
    parsed = parse_signature(pack_signature(gray, 640, 480, cbcr))
    assert (parsed.gray, parsed.size, parsed.side) == (gray, (640, 480), 48)
    assert parsed.chroma.shape == (2, 8, 8) and parsed.chroma[1, 7, 7] == 160
    assert parsed.content is None
    with_box = parse_signature(pack_signature(gray, 640, 480, cbcr, (gray[::-1], 0.1)))
    assert with_box.content == gray[::-1] and abs(with_box.content_area - 0.1) < 1e-4
    for crops in ((1, 2, 3, 4, 5), tuple(range(10, 20))):  # 10 keys for pictures under 20 px
        assert parse_signature(pack_signature(gray, 16, 16, cbcr, crops=crops)).crops == crops
    rgb = np.arange(3 * 4 * 3, dtype=np.uint8).reshape(3, 4, 3)
    alpha = np.full((3, 4), 255, np.uint8)
    alpha[0, 0] = 0
    opaque = parse_signature(pack_signature(gray, 4, 3, cbcr, native=(rgb, None)))
    assert len(opaque.native) == 1 and (opaque.native[0] == rgb).all()
    white, black = parse_signature(pack_signature(gray, 4, 3, cbcr, native=(rgb, alpha))).native
    assert (white == rgb).all() and (black[1:] == rgb[1:]).all() and black[0, 0].max() == 0
    trim = TrimmedContent(2**64 - 1, 300, 70000, False, True)  # a side past uint16 is capped
    full = pack_signature(gray, 640, 480, cbcr, (gray, 0.2), trim, gray[::-1], (9,), (rgb, alpha))
    every = parse_signature(full)
    assert every.trimmed == trim._replace(height=65535) and every.black == gray[::-1]
    assert (every.crops, every.content, len(every.native)) == ((9,), gray, 2)
    assert every.phash_drift == 0
    assert parse_signature(pack_signature(gray, 640, 480, cbcr, drift=27)).phash_drift == 27
    no_thumbnail = HEAD.pack(b"S3", 0, 1, 1, 0, 0, 0, 0, 0, 0, 0) + cbcr
    older = b"S2" + pack_signature(gray, 640, 480, cbcr)[2:]  # a build before the drift
    bad = (bytes(48 * 48), bytes(192), b"", full[:-1], full + b"\0", no_thumbnail, older)
    for other in bad:  # bare squares of old builds, nothing, cut, longer, no thumbnail, S2
        with pytest.raises(ValueError, match="not a dedup signature"):
            parse_signature(other)
    with pytest.raises(ValueError, match="chroma"):
        pack_signature(gray, 1, 1, b"short")


def test_shapes_of_one_luminance_but_different_colours_are_two_pictures() -> None:
    red, grey_twin = scene((200, 40, 40)), scene((88, 88, 88))  # red's luma is 88
    blue = scene((40, 84, 255))  # luma 0.299*40 + 0.587*84 + 0.114*255 = 90
    a, b, c = sig(red), sig(blue), sig(grey_twin)
    assert gray_match(a, b).p99 < 0.2  # the gray thumbnails alone agree
    assert not agree(a, b)
    assert not agree(a, c)
    assert chroma_of(a, b) > 0.4  # limit 0.25


def small_disc(fill, size=(640, 480)) -> Image.Image:
    img = Image.new("RGB", size, (20, 20, 20))
    ImageDraw.Draw(img).ellipse((470, 330, 530, 390), fill=fill)
    return img


def test_a_small_shape_of_another_hue_is_another_picture() -> None:
    # Orange and pink-red of one luminance (~155), a disc of 1% of a dark canvas: the
    # relative chroma rule barely sees it, the hue of the cells it covers does.
    orange, red = small_disc((240, 140, 20)), small_disc((255, 112, 112))
    pa, pb = parse_signature(sig(orange)), parse_signature(sig(red))
    assert chroma_of(sig(orange), sig(red)) < RULE.max_chroma
    assert compare.hue_differences(pa.chroma.reshape(1, -1), pb.chroma.reshape(1, -1), RULE)[0] > 25
    assert not agree(sig(orange), sig(red))
    # Brightness and contrast changes and a JPEG re-encode keep the hue.
    jittered = ImageEnhance.Contrast(ImageEnhance.Brightness(orange).enhance(1.08)).enhance(0.92)
    buf = io.BytesIO()
    jittered.save(buf, "JPEG", quality=55)
    copy = bytes.fromhex(image_features(buf.getvalue()).signature)
    pc = parse_signature(copy)
    assert compare.hue_differences(pa.chroma.reshape(1, -1), pc.chroma.reshape(1, -1), RULE)[0] < 5
    assert agree(sig(orange), copy)


def hue(x, y):
    return compare.hue_differences(x, y, RULE)


def test_hue_is_not_judged_on_grey_cells() -> None:
    grey = np.full((1, 128), 128.0)
    tinted = grey + np.r_[np.full(64, 6.0), np.full(64, -6.0)]  # offsets below the floor
    assert hue(grey, tinted)[0] == 0.0
    assert hue(tinted, -tinted + 256)[0] == 0.0
    blue = grey + np.r_[np.full(64, 60.0), np.zeros(64)]
    assert hue(blue, blue * 1.2 - 0.2 * 128)[0] < 1e-6  # saturation only
    assert hue(blue, grey + np.r_[np.zeros(64), np.full(64, 60.0)])[0] == pytest.approx(90)


def test_saturation_and_recompression_keep_a_match() -> None:
    img = scene((200, 40, 40))
    paler = Image.blend(img, img.convert("L").convert("RGB"), 0.12)  # 12% less saturated
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=60)
    jpeg = Image.open(io.BytesIO(buf.getvalue()))
    a = sig(img)
    assert agree(a, sig(paler))
    assert agree(a, sig(jpeg))


def test_one_size_is_compared_uncropped_and_a_crop_must_explain_the_sizes() -> None:
    img = scene()
    # A crop scaled back to the very same size: what two look-alikes (one icon, moved a
    # little) look like too. Without sizes the crop search accepts it; with one size for
    # both, only the uncropped comparison counts, and it rejects.
    moved = img.crop((16, 10, 320, 240)).resize(img.size)
    a, b = sig(img), sig(moved)
    assert gray_match(a, b).p99 <= RULE.max_p99 and gray_match(a, b).peak <= RULE.max_peak
    assert not agree(a, b)
    cropped = img.crop((10, 6, 312, 236))  # a real crop: sizes shrink by what was cut
    assert agree(a, sig(cropped))
    assert agree(a, sig(img.resize((200, 150))))  # a resize keeps aspect
    stretched = cropped.resize((cropped.width, int(cropped.height * 0.8)))
    assert not agree(a, sig(stretched))  # no crop of the grid explains it


def test_a_match_whose_best_crop_misreads_the_sizes_is_searched_again() -> None:
    """The coordinate search may land on a crop that does not fit the sizes while another
    crop that does also matches: the constrained search finds that one."""
    img = scene()
    a = parse_signature(sig(img))
    cropped = img.crop((8, 9, 312, 231))
    b = parse_signature(sig(cropped))
    from mindvl.data_engine.dedup.search import match_with_aspect

    ta, tb = terms(a.pixels()), terms(b.pixels())
    change = (b.size[0] / b.size[1]) / (a.size[0] / a.size[1])
    found = match_with_aspect(ta, tb, change, RULE.max_aspect_log)
    assert found is not None and found.first_cropped
    assert abs(np.log(found.scale_y / found.scale_x / change)) <= 0.05
    assert found.p99 <= RULE.max_p99
    assert match_with_aspect(ta, tb, change * 1.5, 0.05) is None  # beyond the grid's crops


def equation(text: str, size=(900, 600)) -> Image.Image:
    """One short line of text on a light page: a few pixels of smudge at 48x48."""
    img = Image.new("RGB", size, (246, 246, 240))
    draw = ImageDraw.Draw(img)
    for dx in range(2):  # a bold stroke of Pillow's small bitmap font, scaled up below
        draw.text((8 + dx, 6), text, fill=(30, 30, 30))
    line = img.crop((0, 0, 120, 24)).resize((480, 96), Image.Resampling.NEAREST)
    img.paste((246, 246, 240), (0, 0, size[0], size[1]))
    img.paste(line, (size[0] // 2 - 240, size[1] // 2 - 48))
    return img


def test_a_mostly_blank_picture_carries_its_content_box() -> None:
    from mindvl.data_engine.dedup.fingerprint import content_thumbnail

    img = equation("10 - 4 = ?")
    found = content_thumbnail(img.convert("L"), 48)
    assert found is not None
    thumb, area = found
    assert len(thumb) == 48 * 48 and 0.005 < area < 0.3
    assert len(parse_signature(sig(img)).content) == len(thumb)  # (taken at <= 512 px there)
    assert content_thumbnail(scene().convert("L"), 48) is None  # content fills the picture
    blank = Image.new("L", (300, 200), 240)
    assert content_thumbnail(blank, 48) is None
    tiny = Image.new("L", (120, 80), 240)
    ImageDraw.Draw(tiny).rectangle((50, 30, 60, 36), fill=0)
    assert content_thumbnail(tiny, 48) is None  # a box under 48*48 pixels: no upscale


def test_content_boxes_tell_one_glyph_apart_and_keep_real_copies() -> None:
    a, b = equation("10 - 4 = ?"), equation("10 - 5 = ?")
    sa, sb = sig(a), sig(b)
    pa, pb = parse_signature(sa), parse_signature(sb)
    assert gray_match(sa, sb).p99 <= RULE.max_p99  # the whole-picture thumbnails agree
    assert gray_match(sa, sb).peak <= RULE.max_peak
    assert not compare.contents_agree(pa, pb, RULE)
    assert not agree(sa, sb)
    cropped = a.crop((20, 12, 880, 590))
    resized = a.resize((700, 467), Image.Resampling.LANCZOS)
    for copy in (cropped, resized):
        assert compare.contents_agree(pa, parse_signature(sig(copy)), RULE)
    assert agree(sa, sig(resized))


def line_chart(values: list[float], side: int = 137) -> Image.Image:
    """Axes and a 1-px polyline with dots on white: the kind of picture whose resized copies
    a BOX-filtered thumbnail misjudged (its edges jitter by a source pixel)."""
    img = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(img)
    draw.line([(8, 6), (8, side - 10), (side - 4, side - 10)], fill=(90, 90, 90), width=1)
    step = (side - 24) / (len(values) - 1)
    points = [(14 + i * step, side - 14 - v * (side - 30)) for i, v in enumerate(values)]
    draw.line(points, fill=(150, 40, 40), width=1)
    for x, y in points:
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(150, 40, 40))
    return img


def test_resized_thin_line_art_keeps_agreeing_and_a_moved_point_does_not() -> None:
    values = [0.9, 0.1, 0.35, 0.2, 0.4, 0.15, 0.7]
    original = sig(line_chart(values))
    for scale in (0.55, 0.7, 0.85):  # each failed with BOX thumbnails
        side = round(137 * scale)
        resized = line_chart(values).resize((side, side), Image.Resampling.LANCZOS)
        assert agree(original, sig(resized)), scale
    for i, delta in ((1, 0.15), (3, 0.2), (5, -0.1)):
        moved = list(values)
        moved[i] += delta
        assert not agree(original, sig(line_chart(moved))), i


def test_the_batch_screen_applies_the_chroma_rule_with_the_same_answers() -> None:
    colours = [(200, 40, 40), (40, 84, 255), (40, 160, 60), (200, 40, 40)]
    sigs = [sig(scene(c)) for c in colours] + [sig(scene((200, 40, 40)).resize((200, 150)))]
    left, right = (a.ravel() for a in np.triu_indices(len(sigs), 1))
    keep = batch.screen_pairs(sigs, left, right, np.zeros(left.size), RULE)
    pairs = list(zip(left.tolist(), right.tolist(), strict=True))
    plain = np.array([agree(sigs[i], sigs[j]) for i, j in pairs])
    reds = {0, 3, 4}
    for p, (i, j) in enumerate(pairs):
        # of one size only the red pictures are left to verify; a picture of another size
        # is judged on colour at its crop, per pair (``compare.colours_at``)
        assert keep[p] == ({i, j} <= reds or 4 in (i, j))
        assert plain[p] == ({i, j} <= reds)
    assert not plain[~keep].any()


def test_giving_up_after_the_coarse_grid_only_skips_far_pairs() -> None:
    img = scene()
    near, far = img.crop((12, 8, 310, 232)), scene((200, 40, 40), at=(20, 120))
    ta, tn, tf = (terms(parse_signature(sig(x)).pixels()) for x in (img, near, far))
    assert match_terms(ta, tn, give_up_above=0.8) == match_terms(ta, tn)  # refined as before
    quick, full = match_terms(ta, tf, give_up_above=0.8), match_terms(ta, tf)
    assert quick.p99 > 0.8 and quick.p99 >= full.p99 > RULE.max_p99


def test_far_phash_matches_are_kept_only_when_their_sizes_are_a_crop() -> None:
    base = scene()
    crop = base.crop((8, 6, 310, 232))  # 94-95% of each side
    sigs = [sig(base), sig(crop), sig(base.resize((200, 150))), sig(base)]
    parsed = [parse_signature(s) for s in sigs]
    sizes = np.array([p.size for p in parsed])
    crop = crop_sized(sizes[[0, 0, 0]], sizes[[1, 2, 3]], RULE.crop_min_kept)
    assert crop.tolist() == [True, False, False]  # a crop; a resize (62% a side); one size
    left, right = np.array([0, 0, 0]), np.array([1, 2, 3])
    near = batch.screen_pairs(sigs, left, right, np.array([4, 4, 4]), RULE)
    far = batch.screen_pairs(sigs, left, right, np.array([8, 8, 8]), RULE)
    assert near.tolist() == [True, True, True]  # every copy, when its pHash is close
    assert far.tolist() == [True, False, False]  # only the crop, when it is far
    assert [agree(sigs[0], s, 8) for s in sigs[1:]] == [True, False, False]  # the rule too


def test_decontamination_keeps_far_matches_to_crops_of_an_eval_image() -> None:
    from mindvl.data_engine.dedup.decontaminate import EvalImage, EvalIndex

    base = scene()
    crop, small = base.crop((8, 6, 310, 232)), base.resize((200, 150))
    feats = [image_features(png(x)) for x in (base, crop, small)]
    fake = EvalImage(feats[0].phash, feats[0].signature, "eval-pixels", 1.0)
    index = EvalIndex([fake], RULE)

    def row(f, phash: str | None = None) -> dict:
        return {"pixel_hashes": [f.pixel_hash], "phashes": [phash or f.phash],
                "signatures": [f.signature], "information": [1.0]}  # fmt: skip

    for f in feats[1:]:  # both verify against the eval image when the pHash is close
        assert index.match_row(row(f)) == 0
    far = f"{int(feats[0].phash, 16) ^ 0x7F:016x}"  # 7 bits away from the eval image's pHash
    assert index.match_row(row(feats[1], far)) == 0  # a crop
    assert index.match_row(row(feats[2], far)) is None  # a resize


def framed_panel(band_at: int | None = None) -> Image.Image:
    """A 220x140 flat grey panel in a dark frame on a transparent canvas, 5-6 px in from its
    edges (a dialog's background); ``band_at``: a darker band's top edge."""
    img = Image.new("RGBA", (220, 140), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rectangle((5, 5, 213, 133), fill=(226, 226, 226, 255), outline=(90, 90, 90, 255), width=2)
    if band_at is not None:
        d.rectangle((20, band_at, 200, band_at + 14), fill=(150, 150, 150, 255))
    return img


def test_a_flat_panel_whose_own_phash_drifts_is_compared_despite_the_distance() -> None:
    """A flat, nearly symmetric picture's pHash is noise: its low DCT coefficients sit by
    their median, a resample by another filter moves 16 of its bits, and its resizes land
    14-20 bits away, beyond ``crop_only_beyond`` with sizes no crop has. The rule weighs
    the pair by its distance less that drift, so the comparison decides: the resizes are
    one picture, a panel whose band moved to the other edge is not."""
    panel = features(framed_panel())
    assert parse_signature(bytes.fromhex(panel.signature)).phash_drift >= RULE.drift_min
    no_drift = replace(RULE, drift_min=65)
    for scale in (0.55, 0.7):
        size = round(220 * scale), round(140 * scale)
        resized = features(framed_panel().resize(size, Image.Resampling.LANCZOS))
        distance = (int(panel.phash, 16) ^ int(resized.phash, 16)).bit_count()
        assert distance > RULE.crop_only_beyond
        pair = bytes.fromhex(panel.signature), bytes.fromhex(resized.signature)
        assert PairVerifier(RULE).check(*pair, distance) is None
        assert PairVerifier(no_drift).check(*pair, distance) == "crop_sizes"
    top = features(framed_panel(band_at=15))
    bottom = features(framed_panel(band_at=111).resize((154, 98), Image.Resampling.LANCZOS))
    distance = (int(top.phash, 16) ^ int(bottom.phash, 16)).bit_count()
    pair = bytes.fromhex(top.signature), bytes.fromhex(bottom.signature)
    assert PairVerifier(RULE).check(*pair, distance) is not None
    assert PairVerifier(RULE).check(*pair, 0) is not None  # not by its distance: its pixels


def star(fill: tuple[int, int, int], size: int = 105) -> Image.Image:
    """A five-pointed star in ``fill`` with a white outline on a transparent canvas (set f's
    shapes in eight colours)."""
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    c, outer, inner = size / 2, size * 0.46, size * 0.19
    points = [(c + r * np.sin(k * np.pi / 5), c - r * np.cos(k * np.pi / 5))
              for k, r in zip(range(10), [outer, inner] * 5, strict=True)]  # fmt: skip
    ImageDraw.Draw(img).polygon(points, fill=fill + (255,), outline=(255, 255, 255, 255), width=3)
    return img


def test_one_shape_in_two_hues_of_one_size_is_two_pictures() -> None:
    """A yellow and a yellow-green star, 14-15 degrees of hue apart: within
    ``max_hue_degrees``, which two sizes need (their chroma planes are resampled to the crop
    found), but two pictures of one size compare their planes cell for cell, where only an
    encoding moves the hue, and are held to ``one_size_max_hue_degrees``. A JPEG of the
    yellow star on white stays its copy."""
    yellow, olive = star((247, 209, 20)), star((186, 202, 33))
    a, b = sig(yellow), sig(olive)
    planes = [parse_signature(s).chroma.reshape(1, -1) for s in (a, b)]
    hue = compare.hue_differences(*planes, RULE)[0]
    assert RULE.one_size_max_hue_degrees < hue < RULE.max_hue_degrees
    assert PairVerifier(RULE).check(a, b) == "colour"
    assert PairVerifier(replace(RULE, one_size_max_hue_degrees=15.0)).check(a, b) is None
    flat = Image.alpha_composite(Image.new("RGBA", yellow.size, (255,) * 4), yellow)
    buf = io.BytesIO()
    flat.convert("RGB").save(buf, "JPEG", quality=85)
    jpeg = bytes.fromhex(image_features(buf.getvalue(), blur=False).signature)
    assert PairVerifier(RULE).check(a, jpeg) is None

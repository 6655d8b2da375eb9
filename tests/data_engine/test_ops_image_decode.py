"""image_decode: corrupt inputs are drops with stable reasons; features come from flattened RGB."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mindvl.data_engine.dedup.fingerprint import parse_signature
from mindvl.data_engine.ops.base import OpContext
from mindvl.data_engine.ops.image_decode import ImageDecode, ImageDecodeParams
from mindvl.data_engine.record import Candidate


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def photo(w: int = 96, h: int = 64, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, w, dtype=np.float32)[None, :, None].repeat(h, 0).repeat(3, 2)
    noise = rng.normal(0, 30, (h, w, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def candidate(*images: bytes) -> Candidate:
    return Candidate(key="k", source="s", category="caption", raw_id="r", images=list(images))


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width x height`` (valid CRCs), with a tiny IDAT."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def col(c: Candidate, name: str) -> list:
    """One feature of every image of ``c``."""
    return [getattr(im, name) for im in c.images]


def run(*images: bytes, **params) -> tuple[str | None, Candidate]:
    op = ImageDecode(ImageDecodeParams(**params))
    c = candidate(*images)
    return op(c), c


def test_good_image_gets_every_feature() -> None:
    reason, c = run(encode(photo(), "PNG"), encode(photo(40, 30, 1), "JPEG", quality=90))
    assert reason is None
    assert col(c, "format") == ["png", "jpg"]
    assert (col(c, "width"), col(c, "height")) == ([96, 40], [64, 30])
    assert [len(h) for h in col(c, "pixel_hash")] == [32, 32]
    assert [len(h) for h in col(c, "phash")] == [16, 16]
    sigs = [parse_signature(bytes.fromhex(s)) for s in col(c, "signature")]
    assert [(len(s.gray), s.side, s.size) for s in sigs] == [
        (48 * 48, 48, (96, 64)),
        (48 * 48, 48, (40, 30)),
    ]
    assert all(s.chroma.shape == (2, 8, 8) for s in sigs)
    assert all(0.05 < v <= 0.5 for v in col(c, "information"))
    assert all(v > 50 for v in col(c, "blur"))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: b"", "empty_image"),
        (lambda: b"not an image at all", "unknown_format"),
        (lambda: png_header(100_000, 100_000), "decompression_bomb"),  # 40 GB claimed
        (lambda: png_header(30_000, 30_000), "decompression_bomb"),  # 3.6 GB > the 2 GiB budget
        (lambda: encode(photo(), "JPEG")[:400], "undecodable"),  # truncated JPEG
        (lambda: encode(photo(), "PNG")[:-40], "undecodable"),  # truncated PNG
        (lambda: png_header(64, 64), "undecodable"),  # header fine, pixel data missing
    ],
)
def test_corrupt_images_are_drops(make, reason) -> None:
    got, c = run(encode(photo(), "PNG"), make())
    assert got == reason
    assert col(c, "width") == [None, None]  # not annotated, the good first image neither


def test_cap_is_a_param() -> None:
    data = encode(photo(200, 100), "PNG")
    assert run(data, max_pixels_cap=19_999)[0] == "decompression_bomb"
    assert run(data, max_pixels_cap=20_000)[0] is None


def test_budget_is_a_param_and_a_jpeg_beyond_it_decodes_reduced() -> None:
    png = encode(photo(1200, 900), "PNG")
    assert run(png, max_decode_bytes=1200 * 900 * 4 - 1)[0] == "decompression_bomb"
    reason, c = run(png, max_decode_bytes=1200 * 900 * 4)  # fits, but only strip by strip
    strips, whole = c.images[0], run(png)[1].images[0]
    assert reason is None and strips.pixel_hash == whole.pixel_hash
    # the same grayscale copy: every feature but the 8x8 chroma is the whole path's
    assert (strips.phash, strips.information, strips.blur) == (
        whole.phash,
        whole.information,
        whole.blur,
    )
    a, b = (parse_signature(bytes.fromhex(im.signature)) for im in (strips, whole))
    assert (a.gray, a.size, a.content) == (b.gray, b.size, b.content)
    assert np.abs(a.chroma - b.chroma).max() <= 1
    scene = Image.radial_gradient("L").resize((800, 600)).convert("RGB")
    ImageDraw.Draw(scene).rectangle((100, 80, 420, 300), fill=(200, 30, 30))
    jpeg = encode(scene, "JPEG", quality=90)
    reason, small = run(jpeg, max_decode_bytes=800 * 600)  # 1/2 per side fits
    assert reason is None and (small.images[0].width, small.images[0].height) == (800, 600)
    full = run(jpeg)[1].images[0]
    assert parse_signature(bytes.fromhex(small.images[0].signature)).size == (800, 600)
    assert small.images[0].pixel_hash != full.pixel_hash  # the reduced pixels, tagged
    assert bin(int(small.images[0].phash, 16) ^ int(full.phash, 16)).count("1") <= 6


def test_lossless_containers_hash_equal_and_lossy_differs() -> None:
    img = photo()
    hashes = {fmt: run(encode(img, fmt))[1].images[0].pixel_hash for fmt in ("PNG", "BMP", "TIFF")}
    webp = run(encode(img, "WEBP", lossless=True))[1]
    assert len(set(hashes.values())) == 1
    assert webp.images[0].pixel_hash == hashes["PNG"]
    jpeg = run(encode(img, "JPEG", quality=95))[1]
    assert jpeg.images[0].pixel_hash != hashes["PNG"]
    png = run(encode(img, "PNG"))[1]
    # perceptual signals survive re-encoding
    distance = bin(int(jpeg.images[0].phash, 16) ^ int(png.images[0].phash, 16)).count("1")
    assert distance <= 4
    a, b = (
        np.frombuffer(parse_signature(bytes.fromhex(x.images[0].signature)).gray, np.uint8)
        for x in (jpeg, png)
    )
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 8


def test_transparent_icon_is_composited_on_white() -> None:
    """Flat RGB with the shape only in alpha: on white the shape appears (not a blank image)."""
    icon = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(icon).ellipse((16, 16, 48, 48), fill=(0, 0, 0, 255))
    assert np.ptp(np.asarray(icon.convert("RGB"))) == 0  # RGB alone is flat black
    _, c = run(encode(icon, "PNG"))
    on_white = Image.new("RGB", (64, 64), (255, 255, 255))
    ImageDraw.Draw(on_white).ellipse((16, 16, 48, 48), fill=(0, 0, 0))
    _, ref = run(encode(on_white, "PNG"))
    # one picture to near dedup (the transparent one also carries its look on black, which
    # near dedup compares only against another transparent picture); the exact key also
    # hashes alpha
    sc, sr = (parse_signature(bytes.fromhex(col(x, "signature")[0])) for x in (c, ref))
    assert (sc.gray, sc.size, sc.black is not None, sr.black) == (sr.gray, sr.size, True, None)
    assert col(c, "phash") == col(ref, "phash")
    assert col(c, "pixel_hash") != col(ref, "pixel_hash")
    assert c.images[0].information > 0.2
    # palette image with a transparent index follows the same rule
    pal = icon.convert("RGB").convert("P")
    pal.info["transparency"] = 0
    _, p = run(encode(pal, "PNG", transparency=0))
    assert p.images[0].information < 0.01  # all pixels index 0 = transparent -> plain white


def test_flat_and_blurred_images_score_low() -> None:
    _, flat = run(encode(Image.new("RGB", (300, 200), (250, 250, 250)), "PNG"))
    assert flat.images[0].information < 0.01 and flat.images[0].blur < 1e-6
    from PIL import ImageFilter

    sharp = photo(600, 400)
    _, s = run(encode(sharp, "PNG"))
    _, b = run(encode(sharp.filter(ImageFilter.GaussianBlur(6)), "PNG"))
    assert b.images[0].blur < s.images[0].blur / 20


def test_apply_records_the_drop_and_releases_bytes() -> None:
    c = ImageDecode().apply(candidate(b""))
    assert (c.drop_stage, c.drop_op, c.drop_reason) == ("filter", "image_decode", "empty_image")
    assert c.images == []


def test_high_bit_depth_is_scaled_not_clipped() -> None:
    ramp = (np.arange(64 * 48).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491
    _, c = run(encode(Image.fromarray(ramp), "PNG"))
    eight = Image.fromarray(np.rint(ramp / 257).astype(np.uint8), "L")
    _, ref = run(encode(eight, "PNG"))
    assert col(c, "pixel_hash") == col(ref, "pixel_hash")
    assert c.images[0].information > 0.2  # clipping would make it nearly all white


def test_blur_score_is_computed_only_when_a_recipe_reads_it(tmp_path) -> None:
    from mindvl.common.recipe import recipe_from_text
    from mindvl.data_engine.ops.blur import Blur
    from mindvl.data_engine.pipeline.run import _context

    data = encode(photo(), "PNG")
    lazy = ImageDecode(context=OpContext(blur_score=False))
    c = lazy.apply(candidate(data))
    assert c.drop_reason is None and col(c, "blur") == [None] and col(c, "phash")[0]
    assert c.to_row()["blur"] == []
    assert Blur(context=OpContext(blur_score=False)).apply(c).drop_reason is None
    assert c.images[0].blur > 0  # computed where it is read, never a silent pass
    eager = ImageDecode().apply(candidate(data))
    assert eager.images[0].blur == c.images[0].blur
    assert col(eager, "pixel_hash") == col(c, "pixel_hash") and col(eager, "phash") == col(
        c, "phash"
    )

    def ops(*names: str) -> bool:
        listed = "".join(f"\n  - {{op: {n}}}" for n in names)
        text = (
            f"name: r\nstage: s1\ntokenizer: {tmp_path}\n"
            f"sources:\n  - {{name: a, path: '{tmp_path}', format: folder, category: caption}}\n"
            f"operators:{listed}\n"
        )
        return _context(recipe_from_text(text), tmp_path).blur_score

    assert ops("image_decode", "blur") and not ops("image_decode", "image_size")

"""A 200-Mpixel picture is kept: decoded within the memory budget, its features computed
strip by strip, with a bounded peak; dropping it stays a recipe's choice."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from mindvl.data_engine.dedup.fingerprint import parse_signature
from mindvl.data_engine.ops.image_decode import ImageDecodeParams, image_features, model_picture
from mindvl.data_engine.ops.image_open import DecodeFailure

WIDTH, HEIGHT = 16_000, 12_500  # 200 Mpixel
BOX = (0.125, 0.12, 0.5625, 0.56)  # a dark rectangle, as fractions of the sides

DECODE = """
import json, sys
from mindvl.data_engine.ops.image_decode import image_features


def peak_kib():  # this process's own peak RSS (ru_maxrss would include the parent's at fork)
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])


data = open(sys.argv[1], "rb").read()
before = peak_kib()
f = image_features(data)
peak = peak_kib()
print(json.dumps({"width": f.width, "height": f.height, "phash": f.phash,
                  "signature": f.signature, "peak_delta_kib": peak - before}))
"""


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def grey_png(width: int, height: int) -> bytes:
    """A greyscale PNG of a dark rectangle on a light page, written row by row (the picture
    is never held whole: a 200-Mpixel one costs ~1 MB of memory and a second to make)."""
    x0, y0, x1, y1 = (round(f * s) for f, s in zip(BOX, (width, height) * 2, strict=True))
    page = b"\x00" + bytes([235]) * width
    inked = b"\x00" + bytes([235]) * x0 + bytes([40]) * (x1 - x0) + bytes([235]) * (width - x1)
    z = zlib.compressobj(1)
    idat = []
    for top in range(0, height, 100):
        rows = [inked if y0 <= y < y1 else page for y in range(top, min(top + 100, height))]
        idat.append(z.compress(b"".join(rows)))
    idat.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(idat))
        + _chunk(b"IEND", b"")
    )  # fmt: skip


def test_a_200_mpixel_png_is_kept_with_its_features_and_a_bounded_peak(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(grey_png(WIDTH, HEIGHT))
    proc = subprocess.run(
        [sys.executable, "-c", DECODE, str(path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert (got["width"], got["height"]) == (WIDTH, HEIGHT)
    assert parse_signature(bytes.fromhex(got["signature"])).size == (WIDTH, HEIGHT)
    # The same drawing at 1/10 of the size: the perceptual hash agrees.
    small = image_features(grey_png(WIDTH // 10, HEIGHT // 10))
    assert bin(int(got["phash"], 16) ^ int(small.phash, 16)).count("1") <= 4
    # The decoded frame is 200 MB (1 byte per pixel); flattening the whole picture to RGB
    # and hashing it would add ~1.6 GB. Strip by strip the peak stays near the frame.
    frame_kib = WIDTH * HEIGHT // 1024
    assert got["peak_delta_kib"] < frame_kib + 200 * 1024, got["peak_delta_kib"]


def header_only(width: int, height: int) -> bytes:
    """A greyscale PNG whose header claims ``width x height``, with no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("params", "size", "reason"),
    [
        ({"max_pixels_cap": 64_000_000}, (WIDTH, HEIGHT), "decompression_bomb"),  # its choice
        ({"max_decode_bytes": 100 << 20}, (WIDTH, HEIGHT), "decompression_bomb"),  # 200 MB
        ({}, (60_000, 60_000), "decompression_bomb"),  # 3.6 GB claimed, beyond the 2 GiB
        ({}, (WIDTH, HEIGHT), "undecodable"),  # within the budget: decoded, no pixel data
    ],
)
def test_claims_beyond_the_budget_or_the_recipe_cap_are_drops(params, size, reason) -> None:
    with pytest.raises(DecodeFailure, match=f"^{reason}$"):
        image_features(header_only(*size), ImageDecodeParams(**params))


def test_a_jpeg_beyond_the_budget_is_decoded_reduced() -> None:
    img = Image.new("L", (4000, 3000), 235)
    ImageDraw.Draw(img).rectangle((500, 360, 2250, 1680), fill=40)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)  # a 12 MB frame; 1 MB allowed
    full = image_features(buf.getvalue())
    reduced = image_features(buf.getvalue(), ImageDecodeParams(max_decode_bytes=1 << 20))
    assert (reduced.width, reduced.height) == (4000, 3000)  # 1/4 per side fitted the budget
    assert bin(int(reduced.phash, 16) ^ int(full.phash, 16)).count("1") <= 4


def test_a_model_operator_gets_the_reduced_copy_of_a_picture_too_large_for_it() -> None:
    data = grey_png(4000, 3000)  # a 12 MB frame
    assert model_picture(data, ImageDecodeParams()).size == (4000, 3000)
    small = model_picture(data, ImageDecodeParams(max_decode_bytes=12_000_000))
    assert (small.mode, small.size) == ("RGB", (1334, 1000))  # the strip path's copy


@pytest.mark.parametrize("mode", ["RGBA", "P", "LA", "RGB"])
def test_the_strip_path_gives_the_whole_paths_pixel_hash_alpha_included(monkeypatch, mode) -> None:
    """A picture too large to flatten whole hashes the same pixels (and alpha) strip by strip."""
    import mindvl.data_engine.ops.image_decode as decode

    pic = Image.new("RGBA", (600, 400), (30, 120, 200, 0))
    draw = ImageDraw.Draw(pic)
    draw.ellipse((100, 50, 500, 350), fill=(200, 40, 40, 255))
    draw.rectangle((0, 380, 600, 400), fill=(0, 0, 0, 128))  # alpha only in the last strip
    if mode == "P":
        pic = pic.convert("RGB").convert("P")
        pic.info["transparency"] = pic.getpixel((0, 0))
    elif mode != "RGBA":
        pic = pic.convert(mode)
    buf = io.BytesIO()
    pic.save(buf, "PNG", **({"transparency": pic.info["transparency"]} if mode == "P" else {}))
    whole = image_features(buf.getvalue())
    monkeypatch.setattr(decode, "STRIP_PIXELS", 600 * 37)  # many strips, a ragged last one
    frame = 600 * 400 * 4
    strips = image_features(buf.getvalue(), ImageDecodeParams(max_decode_bytes=2 * frame))
    assert strips.pixel_hash == whole.pixel_hash
    assert (strips.width, strips.height) == (whole.width, whole.height)

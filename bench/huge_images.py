"""Huge pictures through image_decode: kept, decoded within the memory budget, peak bounded.

Synthesises 200-Mpixel pictures (16000 x 12500: a greyscale and an RGBA PNG written row by
row, an RGB JPEG) plus header-only claims, and decodes each in a fresh child process that
reports its wall time and the growth of its peak RSS (``VmHWM``) over the decode. Each
PNG is decoded twice: the strip path ``image_decode`` takes for it, and, for comparison,
the whole-picture path forced (what a raised pixel cap alone would have cost), and the two
are compared: pHash bits apart and the largest difference of the 48x48 signature
thumbnails (grey levels). Figures go to bench/results/huge_images.json.
Usage: nice -n 10 uv run python bench/huge_images.py
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

W, H = 16_000, 12_500
CHILD = """
import json, sys, time
import mindvl.data_engine.ops.image_decode as dec
from mindvl.data_engine.ops.image_open import DecodeFailure
path, budget, whole = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "whole"
if whole:
    dec.FULL_PATH_BYTES_PER_PIXEL = 0  # every picture takes the whole-picture path
data = open(path, "rb").read()


def peak_kib():  # this process's own peak RSS (ru_maxrss would include the parent's at fork)
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0])


before = peak_kib()
t = time.monotonic()
try:
    f = dec.image_features(data, dec.ImageDecodeParams(max_decode_bytes=budget), blur=False)
    out = {"kept": True, "size": [f.width, f.height], "phash": f.phash, "sig": f.signature}
except DecodeFailure as failure:
    out = {"kept": False, "reason": str(failure)}
out["seconds"] = round(time.monotonic() - t, 2)
out["peak_rss_growth_mib"] = round((peak_kib() - before) / 1024, 1)
print(json.dumps(out))
"""


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int, height: int, colour_type: int, rows: tuple[bytes, bytes] | None) -> bytes:
    """A PNG from two row patterns (page, and a row crossing a rectangle in the middle
    third of the height), compressed row block by row block; ``rows=None``: header only."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
    if rows is not None:
        z, parts = zlib.compressobj(1), []
        for top in range(0, height, 64):
            block = [
                rows[height // 3 <= y < 2 * height // 3] for y in range(top, min(top + 64, height))
            ]
            parts.append(z.compress(b"".join(b"\x00" + r for r in block)))
        parts.append(z.flush())
        out += _chunk(b"IDAT", b"".join(parts))
    return out + _chunk(b"IEND", b"")


def pictures(d: Path) -> dict[str, Path]:
    from PIL import Image, ImageDraw

    x0, x1 = W // 4, W // 2
    grey = (bytes([235]) * W, bytes([235]) * x0 + bytes([40]) * (x1 - x0) + bytes([235]) * (W - x1))
    clear, ink = b"\x00\x00\x00\x00", b"\x20\x40\xc0\xff"
    rgba = (clear * W, clear * x0 + ink * (x1 - x0) + clear * (W - x1))
    files = {
        "png_grey_200mpx": png(W, H, 0, grey),
        "png_rgba_200mpx": png(W, H, 6, rgba),
        "png_header_60000x60000": png(60_000, 60_000, 2, None),
    }
    img = Image.new("RGB", (W, H), (235, 230, 220))
    ImageDraw.Draw(img).rectangle((x0, H // 3, x1, 2 * H // 3), fill=(32, 64, 192))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    files["jpeg_rgb_200mpx"] = buf.getvalue()
    del img
    paths = {}
    for name, data in files.items():
        paths[name] = d / name
        paths[name].write_bytes(data)
    return paths


def decode(path: Path, budget: int, mode: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(budget), mode],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else proc.returncode}
    return json.loads(proc.stdout)


def _compare(rows: list[dict]) -> None:
    """Strip path vs whole-picture path of the same picture, then drop the signatures."""
    import numpy as np

    from mindvl.data_engine.dedup.fingerprint import parse_signature

    by = {(r["picture"], r["budget_mib"], r["path"]): r for r in rows}
    for (pic, budget, path), r in by.items():
        whole = by.get((pic, budget, "whole"))
        if path == "strips" and whole is not None and r.get("kept") and whole.get("kept"):
            a, b = (
                np.frombuffer(parse_signature(bytes.fromhex(x["sig"])).gray, np.uint8).astype(int)
                for x in (r, whole)
            )
            r["vs_whole_phash_bits"] = bin(int(r["phash"], 16) ^ int(whole["phash"], 16)).count("1")
            r["vs_whole_thumbnail_max_diff"] = int(np.abs(a - b).max())
    for r in rows:
        r.pop("sig", None)


def main() -> None:
    from mindvl.data_engine.ops.image_open import DEFAULT_DECODE_BYTES

    d = Path(tempfile.mkdtemp(prefix="huge_images_"))
    paths = pictures(d)
    runs = [
        ("png_grey_200mpx", DEFAULT_DECODE_BYTES, "strips"),
        ("png_grey_200mpx", DEFAULT_DECODE_BYTES, "whole"),
        ("png_rgba_200mpx", DEFAULT_DECODE_BYTES, "strips"),
        ("png_rgba_200mpx", DEFAULT_DECODE_BYTES, "whole"),
        ("jpeg_rgb_200mpx", DEFAULT_DECODE_BYTES, "strips"),
        ("jpeg_rgb_200mpx", 256 << 20, "strips"),  # 800 MB frame: decoded at 1/2 per side
        ("png_rgba_200mpx", 256 << 20, "strips"),  # beyond the budget: dropped
        ("png_header_60000x60000", DEFAULT_DECODE_BYTES, "strips"),
    ]
    rows = []
    for name, budget, mode in runs:
        row = {"picture": name, "file_mib": round(paths[name].stat().st_size / 2**20, 2),
               "budget_mib": budget >> 20, "path": mode, **decode(paths[name], budget, mode)}  # fmt: skip
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "sig"}), flush=True)
    _compare(rows)
    for p in paths.values():
        p.unlink()
    d.rmdir()
    out = Path(__file__).parent / "results" / "huge_images.json"
    print(json.dumps([r for r in rows if "vs_whole_phash_bits" in r]))
    out.write_text(json.dumps({"size": f"{W}x{H}", "runs": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

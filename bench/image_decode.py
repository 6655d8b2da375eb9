"""Throughput of the image_decode operator (decode + every feature), single process.

Writes bench/results/image_decode.json: images per CPU-second per format and size (one core), and the share of
time spent in the full decode alone, so the feature overhead is visible.
Usage: uv run python bench/image_decode.py [--n 40]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mindvl.data_engine.ops.image_decode import image_features


def photo(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 127 + 60 * np.sin(x / 37 + seed) + 40 * np.cos(y / 23)
    img = base[..., None] + rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def rate(fn, items: list[bytes]) -> float:
    """Images per CPU-second (process time: robust on a shared, oversubscribed machine)."""
    fn(items[0])  # warm-up: lazy imports, first-call allocations
    start = time.process_time()
    for data in items:
        fn(data)
    return len(items) / (time.process_time() - start)


def decode_only(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as img:
        img.load()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    args = ap.parse_args()
    rows = []
    for fmt in ("JPEG", "PNG", "WEBP"):
        for w, h in ((512, 384), (1024, 768), (2048, 1536)):
            items = [encode(photo(w, h, s), fmt) for s in range(args.n)]
            full = rate(image_features, items)
            dec = rate(decode_only, items)
            rows.append(
                {
                    "format": fmt.lower(),
                    "size": f"{w}x{h}",
                    "images_per_cpu_s": round(full, 1),
                    "decode_only_images_per_cpu_s": round(dec, 1),
                    "decode_share": round(full / dec, 2),
                }
            )
            print(rows[-1])
    out = Path(__file__).parent / "results" / "image_decode.json"
    out.parent.mkdir(exist_ok=True)
    meta = {
        "clock": "process_time",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "n": args.n,
    }
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Dedup rules on real images (features from the image_decode operator), without Ray."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
from PIL import Image, ImageDraw

from mindvl.common.recipe import DedupSpec
from mindvl.data_engine.dedup import dedup_rows
from mindvl.data_engine.dedup.fingerprint import pack_signature, parse_signature
from mindvl.data_engine.ops.image_decode import ImageDecode, eval_hashes_from_images
from mindvl.data_engine.record import Candidate


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def photo(seed: int, size: int = 160) -> Image.Image:
    """A smooth random colour field: a 'photo' with plenty of information."""
    base = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)


def document(seed: int) -> Image.Image:
    """Mostly white page with two short grey lines: a low-information image."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (200, 280), (252, 252, 252))
    draw = ImageDraw.Draw(img)
    for i in range(2):
        x1 = 20 + int(rng.integers(40, 160))
        draw.line([(20, 30 + 14 * i), (x1, 30 + 14 * i)], fill=(70, 70, 70), width=2)
    return img


def icon(shape: str) -> Image.Image:
    """Black shape on a transparent background (RGB all black: only alpha differs)."""
    alpha = Image.new("L", (96, 96), 0)
    draw = ImageDraw.Draw(alpha)
    if shape == "circle":
        draw.ellipse((20, 20, 76, 76), fill=255)
    elif shape == "bar":
        draw.rectangle((10, 40, 86, 56), fill=255)
    else:
        draw.polygon([(48, 10), (86, 86), (10, 86)], fill=255)
    black = Image.new("L", (96, 96), 0)
    return Image.merge("RGBA", (black, black, black, alpha))


def cand(key: str, data: bytes, text: str, quality: float | None = None) -> Candidate:
    c = Candidate(key=key, source="s", category="c", raw_id=key, images=[data], caption=text)
    c.quality = quality
    ImageDecode().apply(c)
    assert not c.dropped, c.drop_reason
    return c


def dedup(cands: list[Candidate], spec: DedupSpec, evals=None):
    """The candidates' rows after ``dedup_rows``, by key, and the stats."""
    rows, stats = dedup_rows([c.to_row() for c in cands], spec, evals)
    return {r["key"]: r for r in rows}, stats


def outcome(rows: dict[str, dict]) -> dict[str, tuple]:
    """(drop op, drop reason, survivor) by key."""
    return {
        k: (r["drop_op"], r["drop_reason"], json.loads(r["meta"]).get("dup_survivor"))
        for k, r in rows.items()
    }


def test_exact_pixels_pairs_and_near_copies() -> None:
    a = photo(1)
    cands = [
        cand("a", encode(a), "a red thing"),
        cand("a_png9", encode(a, compress_level=9), "a red thing"),  # same pair
        cand("a_text", encode(a, compress_level=1), "another caption"),  # same image
        cand("a_small", encode(a.resize((120, 120)), "JPEG", quality=70), "a red thing"),
        cand("b", encode(photo(2)), "b"),
        cand("c", encode(photo(3)), "c"),
    ]
    rows, stats = dedup(cands, DedupSpec())
    out = outcome(rows)
    # equal pixels and size: the smaller sha256(key) survives
    survivor = min(("a", "a_png9", "a_text"), key=lambda k: hashlib.sha256(k.encode()).hexdigest())
    text = {"a": "red", "a_png9": "red", "a_text": "other"}
    for k in ("a", "a_png9", "a_text"):
        if k == survivor:
            assert out[k] == (None, None, None)
        else:
            reason = "same_image_and_text" if text[k] == text[survivor] else "same_image"
            assert out[k] == ("exact_dedup", reason, survivor)
    assert out["a_small"] == ("near_dedup", "near_duplicate", survivor)
    assert out["b"] == out["c"] == (None, None, None)
    assert "dup_group" not in json.loads(rows["b"]["meta"])
    groups = {json.loads(rows[c.key]["meta"])["dup_group"] for c in cands[:4]}
    assert len(groups) == 1
    assert (stats.exact_groups, stats.exact_dropped) == (1, 2)
    assert (stats.near_groups, stats.near_dropped) == (1, 1)
    assert stats.near_candidate_pairs >= 1


def test_exact_off_keeps_same_image_with_other_text() -> None:
    a = photo(4)
    cands = [
        cand("a", encode(a), "one"),
        cand("a_same", encode(a, compress_level=9), "one"),
        cand("a_other", encode(a, compress_level=1), "two"),
    ]
    spec = DedupSpec.model_validate({"exact": False, "near": {"enabled": False}})
    rows, stats = dedup(cands, spec)
    out = outcome(rows)
    assert out["a_other"][0] is None
    assert [out["a"][0], out["a_same"][0]].count("exact_dedup") == 1
    assert stats.exact_dropped == 1


def test_higher_resolution_then_quality_survives() -> None:
    a = photo(5, size=200)
    cands = [
        cand("small", encode(a.resize((140, 140)), "JPEG", quality=90), "x", quality=0.99),
        cand("big", encode(a, "JPEG", quality=60), "x", quality=0.1),
        cand("same_lo", encode(a.resize((140, 140)), "WEBP", quality=90), "y", quality=0.2),
    ]
    out = outcome(dedup(cands, DedupSpec())[0])
    assert out["big"][0] is None
    assert out["small"][2] == out["same_lo"][2] == "big"


def test_low_information_images_get_exact_dedup_only() -> None:
    docs = [document(i) for i in range(12)]
    cands = [cand(f"d{i}", encode(d), f"page {i}") for i, d in enumerate(docs)]
    cands.append(cand("d0_copy", encode(docs[0], compress_level=9), "page 0"))
    unguarded = [cand(c.key, encode(docs[int(c.key[1:3].rstrip("_"))]), c.caption) for c in cands]
    spec = DedupSpec.model_validate({"near": {"min_information": 0.05}})
    rows, stats = dedup(cands, spec)
    out = outcome(rows)
    dropped = [k for k, v in out.items() if v[0]]
    assert dropped == ["d0_copy"] or dropped == ["d0"]
    assert stats.low_information_exact_only == 12
    assert stats.near_candidate_pairs == 0
    # without the guard pHash pairs these different pages up; verification keeps them apart
    # (their content boxes differ), while the whole-page thumbnails alone would let some
    # of them collapse (flat at 48x48)
    loose_spec = DedupSpec.model_validate({"near": {"max_hamming": 10}})
    _, loose = dedup(unguarded, loose_spec)
    assert loose.near_candidate_pairs > 10 and loose.near_dropped == 0
    gray_only = [cand(c.key, encode(docs[int(c.key[1:3].rstrip("_"))]), c.caption) for c in cands]
    for c in gray_only:
        p = parse_signature(bytes.fromhex(c.images[0].signature))
        chroma = p.chroma.astype(np.uint8).tobytes()
        c.images[0].signature = pack_signature(p.gray, *p.size, chroma).hex()  # no content box
    assert dedup(gray_only, loose_spec)[1].near_dropped > 0


def test_transparent_icons_are_flattened_not_merged() -> None:
    shapes = ["circle", "bar", "triangle"]
    cands = [cand(s, encode(icon(s)), s) for s in shapes]
    flat = Image.alpha_composite(Image.new("RGBA", (96, 96), "white"), icon("circle"))
    cands.append(cand("circle_jpg", encode(flat.convert("RGB"), "JPEG", quality=85), "circle"))
    out = outcome(dedup(cands, DedupSpec())[0])
    dropped = [k for k, v in out.items() if v[0]]
    assert dropped in (["circle"], ["circle_jpg"])  # same size: sha256(key) decides
    assert out[dropped[0]][2] == ({"circle", "circle_jpg"} - set(dropped)).pop()


def test_verification_rejects_phash_matches_with_different_thumbnails() -> None:
    rows = []
    black, bars = np.zeros((48, 48), np.uint8), np.zeros((48, 48), np.uint8)
    bars[::8] = 200
    for i, gray in enumerate([black, bars]):
        sig = pack_signature(gray.tobytes(), 10, 10, bytes([128]) * 128)
        rows.append({"key": f"k{i}", "caption": "t", "pixel_hashes": [f"p{i}"],
                     "phashes": ["8f3a00ff12345678"], "signatures": [sig.hex()],
                     "information": [0.3], "widths": [10], "heights": [10], "quality": None,
                     "meta": "{}", "drop_reason": None})  # fmt: skip
    out, stats = dedup_rows(rows, DedupSpec())
    assert (stats.near_candidate_pairs, stats.near_rejected_by_verify) == (1, 1)
    assert all(r["drop_reason"] is None for r in out)
    out, stats = dedup_rows(rows, DedupSpec.model_validate({"near": {"verify": False}}))
    assert stats.near_dropped == 1


def test_decontamination_and_already_dropped_rows() -> None:
    ev = photo(7)
    evals = eval_hashes_from_images([encode(ev), b"not an image"])
    assert len(evals) == 1
    cands = [
        cand("leak", encode(ev.resize((150, 150)), "JPEG", quality=75), "q"),
        cand("leak_exact", encode(ev, compress_level=9), "q2"),
        cand("clean", encode(photo(8)), "q"),
        cand("clean_copy", encode(photo(8), compress_level=9), "q"),
    ]
    cands[3].drop("filter", "blur", "too_blurry")  # dropped before dedup: untouched
    before = cands[3].to_row()
    spec = DedupSpec.model_validate({"decontaminate": ["evalset"]})
    rows, stats = dedup(cands, spec, evals)
    out = outcome(rows)
    assert out["leak"][:2] == out["leak_exact"][:2] == ("decontaminate", "eval_image")
    assert out["clean"] == (None, None, None)
    assert rows["clean_copy"] == before
    assert stats.decontaminated == 2
    assert stats.exact_dropped == stats.near_dropped == 0
    assert json.loads(rows["leak"]["meta"])["dup_group"] == "eval-0"

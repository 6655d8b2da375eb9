"""Dedup quality on real pictures: the corpus of ``bench/real_images_set.py`` (icon themes,
flags, line art from Debian packages, with planted copies and a pixel-checked truth).

Every picture is fingerprinted as a build does (``image_features``) and deduplicated by the
pure core (``plan_dedup``, default recipe; ``local.py``, what a build's local route runs).
Measured against the truth:

- exact recall: byte copies and PNG re-saves ending in their original's group (or dropped
  for a pixel-checked repeat of it: ``is_found``);
- near recall (and per planted transform): resized PNGs, JPEGs on white, padded, cropped;
- precision: drops whose survivor is the same picture (same truth group);
- ``transparent_wrong``: wrong drops where either picture has transparency;
- ``by_design``: wrong drops between pictures whose originals have one size and differ in
  under ``DESIGN_SHARE`` of the pixels at their best small move (variants drawn or
  re-exported to be near-identical, finer than the 48x48 signature: counted, not excused);
- ``two_sizes``: wrong drops between pictures whose originals have two sizes (none is by
  design, which asks for one): mostly one drawing a package ships at two scales, two
  pictures to the truth, which joins originals of two sizes only when one is found inside
  the other or is the other's drawing flattened onto an opaque picture;
- ``wrong_apart``: wrong drops by how far apart their originals are (``apart``: the share
  of pixels more than 32 levels apart at their best small move, binned by ``APART_BINS``;
  two sizes apart), and each wrong drop in ``--json`` with its share and largest level
  difference, so the line ``DESIGN_SHARE`` draws can be judged against the drops near it.
- ``by_kind``: drops, wrong drops (by design; two sizes; apart) and precision per kind of the
  dropped picture, and near recall per kind of the copy's original
  (``real_images_set.kind_of``: its package's, or for pysiogame its folder's: icons,
  flags, clip art, game sprites, widget assets), so that the kinds issue #18 names are
  read apart from game sprites' animation frames and controls' states.

- ``same_size_jpeg``: a pair check, not a build: the first ``REENCODE_ICONS`` originals of at
  most 64 px a side (by key), each flattened on white and saved as a JPEG of its own size
  at each of ``REENCODE_QUALITIES`` (no planted kind keeps the size), and how many of those
  pairs a build pairs and the rule accepts (``accepts``: at the distance the build judges
  them at).

- ``palette_copies``: a pair check too: the first ``PALETTE_ICONS`` transparent originals of
  at most 64 px a side (by key, ``transparent_icons``), each reduced to each of ``PALETTE_COLOURS`` colours by
  Pillow's ``quantize`` (its fast octree, the one it has for RGBA: alpha is quantized
  too) and saved as a palette PNG with its transparency (a re-encode that keeps the size
  and the alpha), and how many of those pairs a build pairs and the rule accepts, of those
  whose pixels the reduction changed (the others are exact copies).

- ``webp_copies``: a pair check too: the same transparent icons saved as lossy WebPs of
  their own size (alpha kept, as WebP keeps it) at each of ``WEBP_QUALITIES`` (62 and 83
  between the rule's own trial qualities) and at Pillow's lowest and highest effort
  (``method`` 0 and 6; the rule's trial encodes at its default, 4), and how many of those
  pairs a build pairs and the rule accepts.

- ``other_resizers``: a pair check too: the first ``RESIZE_ICONS`` originals of 12-64 px a
  side (by key), each resized to 0.6, 0.75 and 0.9 of its size by resamplers other than
  the Pillow Lanczos the planted copies use (``RESAMPLERS``: OpenCV's cubic and area on
  straight, not premultiplied, alpha, as ``cv2.resize`` does on an RGBA array; a
  Mitchell-Netravali cubic on straight alpha; the same in linear light, premultiplied, as
  GIMP does), saved as PNG, and how many of those pairs a build pairs and the rule accepts.

The same corpus is also grouped by pHash alone within 10 bits (imagededup's PHash default
threshold, via imagehash's pHash), without any verification, for comparison.

Usage: uv run python bench/dedup_real.py [--corpus bench/data/real_images]
        [--json bench/results/dedup_real.json] [--show 20] [--max-hamming K]
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
from dedup_quality import feature_row, rates, spec_of
from PIL import Image
from real_images_set import kind_of
from real_images_truth import composites, moves

NEAR_KINDS = ("resize", "jpeg_white", "pad", "crop")
EXACT_KINDS = ("copy", "resave")
DESIGN_SHARE = 0.02  # at most this share of pixels differ (by > 32 in a channel)
APART_BINS = (0.02, 0.05, 0.10, 0.25)  # ``wrong_apart``: share of pixels apart, binned
REENCODE_ICONS = 400  # icons re-encoded as JPEGs of their own size (``same_size_jpeg``)
REENCODE_QUALITIES = (40, 60, 75, 90)
RESIZE_ICONS = 200  # icons resized by other tools (``other_resizers``)
PALETTE_ICONS = 200  # transparent icons reduced to a palette (``palette_copies``)
PALETTE_COLOURS = (256, 64, 16)
WEBP_QUALITIES = (50, 62, 83)  # lossy WebPs of transparent icons (``webp_copies``)
WEBP_METHODS = (0, 6)
RESAMPLERS = ("opencv_cubic_straight", "opencv_area_straight", "mitchell_straight",
              "mitchell_linear_light")  # fmt: skip


def rows_of(corpus: Path, truth: dict) -> list[dict]:
    from mindvl.data_engine.ops.image_decode import DecodeFailure, image_features

    rows = []
    for name, t in sorted(truth.items()):
        try:
            f = image_features((corpus / "images" / t["file"]).read_bytes(), blur=False)
        except DecodeFailure:
            continue
        rows.append(feature_row(name, f))
    return rows


def original(truth: dict, name: str) -> dict:
    """The truth of a picture's original (itself when it is one)."""
    return truth[truth[name].get("of", name)]


def apart(corpus: Path, truth: dict, a: str, b: str) -> tuple[float, float, int] | None:
    """How far apart the originals of a and b (each itself when it is one) are, when they
    have one size: at their best whole-picture move of up to ``real_images_set.REPEAT_MOVE``
    pixels (the truth's), the share of pixels more than 32 levels apart on white or on
    black, that share on white alone (a picture flattened on white is near it) and the
    largest level difference; None for two sizes."""
    ta, tb = (original(truth, k) for k in (a, b))
    x, y = (_composites(corpus / "images" / t["file"]) for t in (ta, tb))
    if x.shape != y.shape:
        return None
    found = []
    for p, q in moves(x, y):
        d = np.abs(p - q).max(-1)
        found.append((float((d.max(0) > 32).mean()), float((d[0] > 32).mean()), int(d.max())))
    return min(found)


@lru_cache(maxsize=512)
def _composites(path: Path) -> np.ndarray:
    """An original's composites, decoded once: one picture is in many wrong drops (pHash
    alone makes hundreds a set)."""
    return composites(Image.open(path))


def apart_bins(wrong_apart: list[tuple[float, float, int] | None]) -> dict[str, int]:
    """Wrong drops by how far apart their originals are (``APART_BINS``), two sizes apart."""
    labels = [f"under {edge:.0%}" for edge in APART_BINS] + [f"{APART_BINS[-1]:.0%} or more"]
    out = Counter()
    for far in wrong_apart:
        if far is None:
            out["two sizes"] += 1
        else:
            out[labels[sum(far[0] >= edge for edge in APART_BINS)]] += 1
    return {k: out[k] for k in [*labels, "two sizes"] if out[k]}


def as_built(features) -> tuple[bytes, tuple]:
    """A picture's signature and its (pHash, candidate keys, their kinds), as a build bands
    them (``candidates.candidate_keys``); ``features``: its ``image_features``."""
    from mindvl.data_engine.dedup.candidates import candidate_keys

    sig, phash = bytes.fromhex(features.signature), int(features.phash, 16)
    return sig, (phash, *candidate_keys([phash], [sig])[::2])


def accepts(verifier, own: tuple[bytes, tuple], copy: bytes) -> bool:
    """Whether a build pairs ``copy`` (encoded bytes) with a picture (``own``: its
    ``as_built``) and the rule accepts the pair at the pHash distance the build judges it
    at: the least over the pairs of their candidate keys that exact banding finds
    (``candidates.pair_distance``); not paired at all counts as not accepted."""
    from mindvl.data_engine.dedup.candidates import pair_distance
    from mindvl.data_engine.ops.image_decode import image_features

    sig, keys = as_built(image_features(copy, blur=False))
    distance = pair_distance(own[1], keys, verifier.rule)
    return distance is not None and verifier.agree(own[0], sig, distance)


def same_size_jpeg(corpus: Path, truth: dict) -> dict[str, str]:
    """Per JPEG quality, the share of same-size JPEG re-encodes of icons the rule accepts
    against their originals (module docstring)."""
    from mindvl.data_engine.dedup.compare import PairVerifier
    from mindvl.data_engine.dedup.rule import NearRule
    from mindvl.data_engine.ops.image_decode import image_features

    verifier, accepted, n = PairVerifier(NearRule()), Counter(), 0
    for _, t in sorted(truth.items()):
        data = (corpus / "images" / t["file"]).read_bytes() if t["kind"] == "original" else b""
        img = Image.open(io.BytesIO(data)) if data else None
        if img is None or max(img.size) > 64:
            continue
        rgba = img.convert("RGBA")
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255,) * 4), rgba)
        own = as_built(image_features(data, blur=False))
        for q in REENCODE_QUALITIES:
            buf = io.BytesIO()
            flat.convert("RGB").save(buf, "JPEG", quality=q)
            accepted[q] += accepts(verifier, own, buf.getvalue())
        n += 1
        if n == REENCODE_ICONS:
            break
    return {f"q{q}": f"{accepted[q]}/{n}" for q in REENCODE_QUALITIES}


def transparent_icons(corpus: Path, truth: dict) -> list[tuple[Image.Image, tuple]]:
    """The first ``PALETTE_ICONS`` transparent originals of at most 64 px a side (by key),
    each decoded to RGBA with its ``as_built`` fingerprint (for ``palette_copies`` and
    ``webp_copies``)."""
    from mindvl.data_engine.ops.image_decode import image_features

    out = []
    for _, t in sorted(truth.items()):
        if t["kind"] != "original" or not t["transparent"] or max(t["size"]) > 64:
            continue
        data = (corpus / "images" / t["file"]).read_bytes()
        out.append(
            (
                Image.open(io.BytesIO(data)).convert("RGBA"),
                as_built(image_features(data, blur=False)),
            )
        )
        if len(out) == PALETTE_ICONS:
            break
    return out


def palette_copies(icons: list[tuple[Image.Image, tuple]]) -> dict[str, str]:
    """Per palette size, the share of palette reductions of transparent icons (``icons``:
    ``transparent_icons``) the rule accepts against their originals (module docstring)."""
    from mindvl.data_engine.dedup.compare import PairVerifier
    from mindvl.data_engine.dedup.rule import NearRule

    verifier, accepted, changed = PairVerifier(NearRule()), Counter(), Counter()
    for rgba, own in icons:
        for colours in PALETTE_COLOURS:
            reduced = rgba.quantize(colours, method=Image.Quantize.FASTOCTREE)
            if np.array_equal(composites(reduced), composites(rgba)):
                continue  # no pixel changed: an exact copy
            buf = io.BytesIO()
            reduced.save(buf, "PNG")
            changed[colours] += 1
            accepted[colours] += accepts(verifier, own, buf.getvalue())
    return {str(c): f"{accepted[c]}/{changed[c]}" for c in PALETTE_COLOURS}


def webp_copies(icons: list[tuple[Image.Image, tuple]]) -> dict[str, str]:
    """Per quality and effort, the share of lossy WebPs of transparent icons (``icons``:
    ``transparent_icons``) the rule accepts against their originals (module docstring)."""
    from mindvl.data_engine.dedup.compare import PairVerifier
    from mindvl.data_engine.dedup.rule import NearRule

    verifier, accepted = PairVerifier(NearRule()), Counter()
    for rgba, own in icons:
        for q in WEBP_QUALITIES:
            for method in WEBP_METHODS:
                buf = io.BytesIO()
                rgba.save(buf, "WEBP", quality=q, method=method)
                accepted[q, method] += accepts(verifier, own, buf.getvalue())
    n = len(icons)
    return {f"q{q}_m{m}": f"{accepted[q, m]}/{n}" for q in WEBP_QUALITIES for m in WEBP_METHODS}


def _mitchell(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) Mitchell-Netravali (B = C = 1/3) resampling matrix, its support widened
    by the downscale (antialiased, as ImageMagick's resize is)."""
    s = min(n_out / n_in, 1.0)
    x = np.abs(
        ((np.arange(n_in)[None] + 0.5) - (np.arange(n_out)[:, None] + 0.5) * n_in / n_out) * s
    )
    w = np.where(x < 1, (7 * x**3 - 12 * x**2 + 16 / 3) / 6,
                 np.where(x < 2, (-7 / 3 * x**3 + 12 * x**2 - 20 * x + 32 / 3) / 6, 0.0))  # fmt: skip
    return w / w.sum(1, keepdims=True)


def resampled(rgba: np.ndarray, size: tuple[int, int], how: str) -> np.ndarray:
    """A float (h, w, 4) straight-alpha RGBA picture resized to ``size`` by ``how``
    (``RESAMPLERS``), as uint8 RGBA."""
    import cv2

    if how.startswith("opencv"):
        flag = cv2.INTER_CUBIC if "cubic" in how else cv2.INTER_AREA
        out = cv2.resize(rgba, size, interpolation=flag)
    else:
        my, mx = _mitchell(rgba.shape[0], size[1]), _mitchell(rgba.shape[1], size[0])
        if how == "mitchell_straight":
            out = np.einsum("ij,jkc,lk->ilc", my, rgba, mx)
        else:  # linear light, premultiplied
            a = rgba[..., 3:] / 255.0
            lin = np.concatenate([(rgba[..., :3] / 255.0) ** 2.2 * a, a], -1)
            r = np.clip(np.einsum("ij,jkc,lk->ilc", my, lin, mx), 0, 1)
            alpha = r[..., 3:]
            colour = np.where(alpha > 0, r[..., :3] / np.maximum(alpha, 1e-6), 0.0)
            out = np.concatenate([np.clip(colour, 0, 1) ** (1 / 2.2), alpha], -1) * 255
    return np.rint(np.clip(out, 0, 255)).astype(np.uint8)


def other_resizers(corpus: Path, truth: dict) -> dict[str, str]:
    """Per resampler, the share of resizes of icons by tools other than Pillow that the rule
    accepts against their originals (module docstring)."""
    from mindvl.data_engine.dedup.compare import PairVerifier
    from mindvl.data_engine.dedup.rule import NearRule
    from mindvl.data_engine.ops.image_decode import image_features

    verifier, accepted, n = PairVerifier(NearRule()), Counter(), 0
    for _, t in sorted(truth.items()):
        if t["kind"] != "original" or not 12 <= min(t["size"]) <= max(t["size"]) <= 64:
            continue
        data = (corpus / "images" / t["file"]).read_bytes()
        rgba = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"), np.float32)
        own = as_built(image_features(data, blur=False))
        for scale in (0.6, 0.75, 0.9):
            size = (round(rgba.shape[1] * scale), round(rgba.shape[0] * scale))
            for how in RESAMPLERS:
                buf = io.BytesIO()
                Image.fromarray(resampled(rgba, size, how), "RGBA").save(buf, "PNG")
                accepted[how] += accepts(verifier, own, buf.getvalue())
        n += 1
        if n == RESIZE_ICONS:
            break
    return {how: f"{accepted[how]}/{3 * n}" for how in RESAMPLERS}


def transparent(truth: dict, name: str) -> bool:
    return original(truth, name)["transparent"]


def is_found(truth: dict, cluster: dict, copy: str) -> bool:
    """A planted copy is found when it ends in its original's group, or is dropped for
    another picture of its truth group (a package's own repeat of the original)."""
    survivor = cluster.get(copy, copy)
    if survivor == cluster.get(truth[copy]["of"], truth[copy]["of"]):
        return True
    return survivor != copy and truth[survivor]["group"] == truth[copy]["group"]


def measure(corpus: Path, truth: dict, keys: set, cluster: dict, drops: list) -> dict:
    """``cluster``: key -> its survivor (itself when kept); ``drops``: (key, survivor)."""
    found, total = Counter(), Counter()
    for k, t in truth.items():
        if t["kind"] == "original" or k not in keys or t["of"] not in keys:
            continue
        near = "exact" if t["kind"] in EXACT_KINDS else "near"
        for kind in (near, t["kind"], (near, kind_of(t["package"], t["path"]))):
            total[kind] += 1
            found[kind] += is_found(truth, cluster, k)
    wrong = [(a, b) for a, b in drops if truth[a]["group"] != truth[b]["group"]]
    far = [apart(corpus, truth, a, b) for a, b in wrong]
    design = [(a, b) for (a, b), f in zip(wrong, far, strict=True) if f and f[0] < DESIGN_SHARE]
    two = [(a, b) for a, b in wrong if original(truth, a)["size"] != original(truth, b)["size"]]
    return {
        **rates(found, total, len(drops), len(wrong)),
        "transparent_wrong": sum(transparent(truth, a) or transparent(truth, b) for a, b in wrong),
        "by_design": len(design),
        "two_sizes": len(two),
        "wrong_apart": apart_bins(far),
        "by_kind": by_kind(truth, drops, wrong, design, two, far, found, total),
        "recall_by_transform": {k: f"{found[k]}/{total[k]}" for k in EXACT_KINDS + NEAR_KINDS},
        "near_missed": [k for k, t in truth.items() if t["kind"] in NEAR_KINDS and k in keys
                        and not is_found(truth, cluster, k)],
        "wrong": [[a, b, f] for (a, b), f in zip(wrong, far, strict=True)],
    }  # fmt: skip


def by_kind(truth: dict, drops: list, wrong: list, design: list, two: list, far: list,
            found: Counter, total: Counter) -> dict[str, dict]:  # fmt: skip
    """Per kind of picture (``kind_of``): drops, wrong drops, by design, of two sizes, by how
    far apart (``apart_bins``; each counted by the dropped picture's kind) and precision;
    planted near copies found (by their original's kind) and near recall."""

    def count(pairs: list) -> Counter:
        return Counter(kind_of(truth[a]["package"], truth[a]["path"]) for a, _ in pairs)

    n, w, d, t = map(count, (drops, wrong, design, two))
    kinds = sorted(set(n) | {x[1] for x in total if isinstance(x, tuple)})
    out = {}
    for kind in kinds:
        f, m = found["near", kind], total["near", kind]
        out[kind] = {"drops": n[kind], "wrong": w[kind], "by_design": d[kind],
                     "two_sizes": t[kind], "precision": round(1 - w[kind] / max(1, n[kind]), 4),
                     "wrong_apart": apart_bins([f for (a, _), f in zip(wrong, far, strict=True)
                                                if kind_of(truth[a]["package"], truth[a]["path"]) == kind]),
                     "near_found": f"{f}/{m}", "near_recall": round(f / max(1, m), 4)}  # fmt: skip
    return out


def phash_only(rows: list[dict], max_bits: int = 10) -> tuple[dict, list]:
    """Greedy pHash grouping within ``max_bits`` (imagededup's PHash default): in key order,
    each picture joins the first kept picture within the distance."""
    keys = [r["key"] for r in rows]
    hashes = np.array([int(r["phashes"][0], 16) for r in rows], dtype=np.uint64)
    kept, cluster, drops = [], {}, []
    for i, k in enumerate(keys):
        if kept:
            d = np.bitwise_count(hashes[kept] ^ hashes[i])
            j = int(np.argmin(d))
            if d[j] <= max_bits:
                cluster[k] = keys[kept[j]]
                drops.append((k, keys[kept[j]]))
                continue
        kept.append(i)
        cluster[k] = k
    return cluster, drops


def apart_text(far: tuple[float, float, int] | None) -> str:
    if far is None:
        return "two sizes"
    return f"{far[0]:.1%} of pixels apart (on white {far[1]:.1%}), at most {far[2]} levels"


def describe(truth: dict, name: str) -> str:
    t = truth[name]
    return f"{t['package']}:{t['path']} ({t['kind']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("bench/data/real_images"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--show", type=int, default=20, help="wrong drops / misses to print")
    parser.add_argument("--max-hamming", type=int, default=None, help="near.max_hamming")
    args = parser.parse_args()

    from mindvl.data_engine.dedup import plan_dedup

    data = json.loads((args.corpus / "truth.json").read_text())
    truth = data["images"]
    t0 = time.perf_counter()
    rows = rows_of(args.corpus, truth)
    t1 = time.perf_counter()
    decisions, stats = plan_dedup(rows, spec_of(args.max_hamming))
    t2 = time.perf_counter()
    keys = {r["key"] for r in rows}
    cluster = {k: (d.survivor if d.op else k) for k, d in decisions.items()}
    drops = [(d.key, d.survivor) for d in decisions.values() if d.op]
    m = measure(args.corpus, truth, keys, cluster, drops)
    icons = transparent_icons(args.corpus, truth)
    m.update(images=len(rows), features_s=round(t1 - t0, 1), dedup_s=round(t2 - t1, 1),
             candidate_pairs=stats.near_candidate_pairs,
             same_size_jpeg=same_size_jpeg(args.corpus, truth),
             palette_copies=palette_copies(icons), webp_copies=webp_copies(icons),
             other_resizers=other_resizers(args.corpus, truth))  # fmt: skip
    p_cluster, p_drops = phash_only(rows)
    ph = measure(args.corpus, truth, keys, p_cluster, p_drops)
    result = {"corpus": data["summary"], "dedup": m,
              "phash_within_10": {k: v for k, v in ph.items() if k not in ("near_missed", "wrong")}}  # fmt: skip
    for a, b, far in m["wrong"][: args.show]:
        print("WRONG", describe(truth, a), "->", describe(truth, b), apart_text(far))
    for k in m["near_missed"][: args.show]:
        print("MISSED", describe(truth, k))
    short = {k: v for k, v in m.items() if k not in ("near_missed", "wrong")}
    print(json.dumps(short), "\nphash<=10:", json.dumps(result["phash_within_10"]))
    if args.json:
        result["dedup"] = {**short, "wrong": [[describe(truth, a), describe(truth, b), apart_text(f)]
                                              for a, b, f in m["wrong"]]}  # fmt: skip
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

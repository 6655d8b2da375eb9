"""The truth of the real-image dedup benchmark (``real_images_set.py``): which of a set's
originals are one picture.

Truth:

- by construction: a share of the originals (keyed hash) gets planted copies: exact byte
  copies and PNG re-saves (exact), and resized PNGs (alpha kept), JPEGs flattened on white,
  transparent/white padding and crops (near);
- by a pixel check: originals whose decoded pixels are equal, alpha included, are one picture
  (a theme ships the same icon under two names; colour under alpha 0 is not a pixel, so the
  check compares premultiplied RGBA: ``pixel_equal_repeats``); so are originals of one size
  that are the same drawing re-rendered (mate-icon-theme re-exports many of
  gnome-icon-theme's icons, some moved by a pixel or two): composited on white and on
  black and (icons up to ``MOVE_MAX_SIDE`` px) moved as a whole by some shift of at most
  ``REPEAT_MOVE`` pixels (and ``MOVE_MAX_SHARE`` of the side) per axis, no pixel of the
  overlap differs by more than ``REPEAT_MAX`` levels and, allowing each pixel a shift of
  one pixel (a re-rendered edge moves), under ``REPEAT_SHARE`` of them by more than
  ``REPEAT_LEVELS`` (``pixel_near_repeats``). A whole-picture move keeps
  variants apart whose parts moved differently (justify-left vs justify-center). Originals
  equal on white but not in alpha are counted (``flat_equal_alpha_differs``) and stay
  different pictures, as do variants drawn to differ in a small part (another glyph). And
  originals of two sizes, the smaller found pixel for pixel, on both composites, inside the
  larger and keeping at least ``NEST_KEEP`` of each of its sides, are one picture, as a
  planted crop or pad is (``pixel_nested_repeats``: emacs ships an empty 6x21 tree-widget
  canvas as a 6x22 one too). And an opaque original that shows a transparent original's
  drawing flattened on white, at another scale or placed on a card (a package's memory card
  or JPEG of its own clip art: the relation the planted JPEGs on white, resizes and pads
  make), is that picture (``pixel_flattened_repeats``): their drawings' boxes on white (what
  differs from the border's tone by more than ``FLAT_CONTRAST``) of one aspect, the smaller
  at least ``FLAT_MIN_SIDE`` px a side, the larger scaled to the smaller's box; with each
  pixel allowed a shift of one, under ``FLAT_MAX_SHARE`` of them more than ``FLAT_CONTRAST``
  levels apart and under ``FLAT_MAX_BLOB`` of them in a blob a 3x3 erosion leaves (a
  re-rendered edge differs along a line; another part, eye or glyph, as a blob). Two
  transparent pictures keep their alpha to compare and stay two at two sizes; below
  ``FLAT_MIN_SIDE`` the check tells too little (a 48 px icon's 16 px box matched a splash
  screen's). And an original of one size with another that is it reduced to a palette (two
  or more colours, at most ``PALETTE_MAX`` and ``PALETTE_SHARE`` of the other's, each
  pixel's colour a function of the other's colour there, alpha included, and no pixel
  more than ``REPEAT_MAX`` levels apart on either ground: emacs' ``low-color`` toolbar
  icons) is that picture, as the palette copies ``dedup_real.py`` measures are
  (``pixel_palette_repeats``).

``python bench/real_images_truth.py --corpus DIR`` derives the groups again from the
originals on disk (the same checks ``real_images_set.py`` runs when it builds the set) and
rewrites ``DIR/truth.json``, printing how many groups it joined or split and what each
check joined.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

REPEAT_MAX = 64  # re-rendered repeats: no pixel differs by more than this (white or black)
REPEAT_SHARE = 0.01  # ... and under this share of the pixels by more than REPEAT_LEVELS
REPEAT_LEVELS = 24
REPEAT_MOVE = 2  # a re-exported icon may move the whole drawing by this many pixels per axis
MOVE_MAX_SHARE = 0.15  # ... and by at most this share of the side
MOVE_MAX_SIDE = 64  # ... an icon: pictures up to this side (the flags are one export each)
# pairs compared: 12x12 means within this RMS (an icon of thin lines moved 2 px: 42)
THUMB_MAX, THUMB_MAX_UNMOVED = 48, 16
# the least share of each side a planted crop (0.90) or pad (1 / 1.12) keeps
NEST_KEEP = 0.89
# a transparent drawing flattened onto an opaque picture (``flattened_repeats``)
FLAT_CONTRAST = 32
FLAT_MIN_SIDE = 32
FLAT_MAX_ASPECT_LOG = 0.05
FLAT_MAX_SHARE = 0.05
FLAT_MAX_BLOB = 0.001
# a palette reduction (``palette_repeats``): at most this many colours, and at most this
# share of the other's (a recolour maps its colours one to one; emacs' low-colour icons
# keep 3-44% of theirs)
PALETTE_MAX = 256
PALETTE_SHARE = 0.5


def composites(img: Image.Image) -> np.ndarray:
    """(2, h, w, 3) int16: the picture composited on white and on black."""
    x = np.asarray(img.convert("RGBA"), dtype=np.float32)
    a = x[..., 3:] / 255.0
    return np.rint(np.stack([x[..., :3] * a + 255 * (1 - a), x[..., :3] * a])).astype(np.int16)


def rgba_key(img: Image.Image) -> str:
    """Premultiplied RGBA: equal keys, equal pictures (the composites determine it)."""
    return hashlib.sha256(f"{img.size}".encode() + composites(img).tobytes()).hexdigest()


def thumb(pixels: np.ndarray) -> np.ndarray:
    """12x12 means of both composites, flattened (the near-repeat search's key)."""
    return np.concatenate([np.asarray(Image.fromarray(c.astype(np.uint8)).resize(
        (12, 12), Image.Resampling.BOX), dtype=np.float32).reshape(-1) for c in pixels])  # fmt: skip


def rms_distances(v: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(len(v), len(u)) RMS distances between the rows of two stacks of ``thumb`` keys."""
    sq = (v * v).sum(1)[:, None] + (u * u).sum(1)[None] - 2 * v @ u.T
    return np.sqrt(np.maximum(sq, 0) / v.shape[1])


def near_repeats(pictures: list[np.ndarray]) -> list[tuple[int, int]]:
    """Pairs (i, j) of same-size composites that are one drawing re-rendered (module
    docstring); candidates by the RMS distance of 12x12 means first (``THUMB_MAX``)."""
    pairs, by_shape = [], {}
    for i, x in enumerate(pictures):
        by_shape.setdefault(x.shape, []).append(i)
    for ids in by_shape.values():
        if len(ids) < 2:
            continue
        v = np.stack([thumb(pictures[i]) for i in ids])
        d = rms_distances(v, v)
        icons = max(pictures[ids[0]].shape[1:3]) <= MOVE_MAX_SIDE
        for a, b in zip(
            *np.nonzero(np.triu(d < (THUMB_MAX if icons else THUMB_MAX_UNMOVED), 1)), strict=True
        ):
            x, y = pictures[ids[a]], pictures[ids[b]]
            if any(one_drawing(p, q) for p, q in (moves(x, y) if icons else [(x, y)])):
                pairs.append((ids[a], ids[b]))
    return pairs


def nested_repeats(pictures: list[np.ndarray]) -> list[tuple[int, int]]:
    """Pairs (i, j) of composites of two sizes, the smaller found pixel for pixel inside the
    larger, keeping at least ``NEST_KEEP`` of each side (module docstring)."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, x in enumerate(pictures):
        by_size.setdefault(x.shape[1:3], []).append(i)
    pairs = []
    for small, large in itertools.permutations(by_size, 2):
        fits = all(NEST_KEEP * b <= a <= b for a, b in zip(small, large, strict=True))
        if not fits:
            continue
        for i, j in itertools.product(by_size[small], by_size[large]):
            if found_inside(pictures[i], pictures[j]):
                pairs.append((i, j))
    return pairs


def flattened_repeats(pictures: list[np.ndarray], transparent: list[bool]) -> list[tuple[int, int]]:
    """Pairs (i, j): transparent original i's drawing on white is opaque original j's at
    another scale or place (module docstring); candidates by the RMS distance of the boxes'
    12x12 means first (``THUMB_MAX``)."""
    boxes = [drawing_box(x[0]) for x in pictures]
    ids = [i for i, b in enumerate(boxes) if b is not None]
    tiles = {i: pictures[i][0][boxes[i][1] : boxes[i][3], boxes[i][0] : boxes[i][2]] for i in ids}
    clear = [i for i in ids if transparent[i]]
    opaque = [i for i in ids if not transparent[i]]
    if not clear or not opaque:
        return []
    means = {i: thumb(tiles[i][None]) for i in ids}
    d = rms_distances(np.stack([means[i] for i in clear]), np.stack([means[j] for j in opaque]))
    pairs = []
    for a, b in zip(*np.nonzero(d < THUMB_MAX), strict=True):
        i, j = clear[a], opaque[b]
        (hi, wi), (hj, wj) = tiles[i].shape[:2], tiles[j].shape[:2]
        one_aspect = abs(np.log(wi * hj / (hi * wj))) <= FLAT_MAX_ASPECT_LOG
        if one_aspect and drawn_alike(tiles[i], tiles[j]):
            pairs.append((i, j))
    return pairs


def colour_codes(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """Per pixel of composites (2, h, w, 3), the index of its colour (both grounds: colour
    and alpha) among the picture's distinct colours, and how many there are."""
    planes = pixels.transpose(1, 2, 0, 3).reshape(-1, 6).astype(np.int64)
    packed = np.zeros(len(planes), np.int64)
    for k in range(6):
        packed = packed * 256 + planes[:, k]
    distinct, codes = np.unique(packed, return_inverse=True)
    return codes.ravel(), len(distinct)


def palette_repeats(pictures: list[np.ndarray]) -> list[tuple[int, int]]:
    """Pairs (i, j) of same-size composites, i the other reduced to a palette (module
    docstring): two or more colours, at most ``PALETTE_MAX`` and ``PALETTE_SHARE`` of j's, a
    function of j's, and no pixel more than ``REPEAT_MAX`` levels apart; candidates by the
    RMS distance of 12x12 means first (``THUMB_MAX``)."""
    codes = [colour_codes(x) for x in pictures]
    by_shape: dict[tuple, list[int]] = {}
    for i, x in enumerate(pictures):
        by_shape.setdefault(x.shape, []).append(i)
    pairs = []
    for ids in by_shape.values():
        if len(ids) < 2:
            continue
        v = np.stack([thumb(pictures[i]) for i in ids])
        near = np.nonzero(rms_distances(v, v) < THUMB_MAX)
        for i, j in ((ids[a], ids[b]) for a, b in zip(*near, strict=True) if a != b):
            (ci, ni), (cj, nj) = codes[i], codes[j]
            if not 2 <= ni <= min(PALETTE_MAX, PALETTE_SHARE * nj):
                continue
            if np.unique(cj * ni + ci).size != nj:
                continue
            if np.abs(pictures[i].astype(np.int32) - pictures[j]).max() <= REPEAT_MAX:
                pairs.append((i, j))
    return pairs


def truth_groups(
    pictures: list[np.ndarray], keys: list[str], transparent: list[bool]
) -> tuple[list[int], dict[str, int]]:
    """The truth group of each original (``pictures``: composites; ``keys``: ``rgba_key``),
    in order: equal pixels first, then joined by the pixel checks of the module docstring;
    and how many pairs each check joined."""
    first: dict[str, int] = {}
    groups = [first.setdefault(k, len(first)) for k in keys]
    checks = {
        "pixel_near_repeats": near_repeats(pictures),
        "pixel_nested_repeats": nested_repeats(pictures),
        "pixel_flattened_repeats": flattened_repeats(pictures, transparent),
        "pixel_palette_repeats": palette_repeats(pictures),
    }
    merged = union_groups(groups, [p for pairs in checks.values() for p in pairs])
    counts = {"pixel_equal_repeats": len(keys) - len(first)}
    return [merged[g] for g in groups], counts | {k: len(v) for k, v in checks.items()}


def retruth(corpus: Path) -> dict:
    """Derive ``corpus``'s truth groups again from its originals on disk (module docstring);
    a planted copy takes its original's group."""
    path = corpus / "truth.json"
    data = json.loads(path.read_text())
    images = data["images"]
    names = [n for n, t in images.items() if t["kind"] == "original"]
    pictures, keys = [], []
    for n in names:
        with Image.open(corpus / "images" / images[n]["file"]) as img:
            pictures.append(composites(img))
            keys.append(rgba_key(img))
    groups, counts = truth_groups(pictures, keys, [images[n]["transparent"] for n in names])
    group_of = dict(zip(names, groups, strict=True))
    spans: dict[tuple[str, int], set[int]] = {}  # new group -> old groups, and back
    for n in names:
        spans.setdefault(("new", group_of[n]), set()).add(images[n]["group"])
        spans.setdefault(("old", images[n]["group"]), set()).add(group_of[n])
    moved = {w: sum(len(v) - 1 for (k, _), v in spans.items() if k == w) for w in ("new", "old")}
    for name, t in images.items():
        t["group"] = group_of[t.get("of", name)]
    data["summary"].update(counts)
    path.write_text(json.dumps(data, indent=0))
    return {"originals": len(names), "groups_joined": moved["new"], "groups_split": moved["old"],
            **counts}  # fmt: skip


def drawing_box(white: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of what differs from the border's tone by more than
    ``FLAT_CONTRAST`` in a composite on white, at least ``FLAT_MIN_SIDE`` a side; None when
    the border is not one tone (90% within it) or the box is smaller."""
    border = np.concatenate([white[0], white[-1], white[:, 0], white[:, -1]])
    tone = np.median(border, 0)
    if (np.abs(border - tone).max(-1) <= FLAT_CONTRAST).mean() < 0.9:
        return None
    mask = np.abs(white - tone).max(-1) > FLAT_CONTRAST
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0 or min(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 < FLAT_MIN_SIDE:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def drawn_alike(x: np.ndarray, y: np.ndarray) -> bool:
    """Two drawings' tiles on white (int16, (h, w, 3)), the larger scaled to the smaller's
    size by Lanczos: few pixels apart, and none in a blob (module docstring)."""
    from scipy.ndimage import binary_erosion

    if x.shape[0] * x.shape[1] < y.shape[0] * y.shape[1]:
        x, y = y, x
    h, w = y.shape[:2]
    scaled = Image.fromarray(x.astype(np.uint8)).resize((w, h), Image.Resampling.LANCZOS)
    apart = shift_tolerant(y[None], np.asarray(scaled, np.int16)[None]) > FLAT_CONTRAST
    blob = binary_erosion(apart, np.ones((3, 3), bool))
    return bool(apart.mean() < FLAT_MAX_SHARE and blob.mean() < FLAT_MAX_BLOB)


def found_inside(small: np.ndarray, large: np.ndarray) -> bool:
    """Whether composites ``small`` equal ``large``'s at some offset (the offsets where the
    small's middle row matches are checked whole)."""
    h, w = small.shape[1:3]
    r = h // 2
    rows = large[:, r : large.shape[1] - h + r + 1]  # the rows small's row r may be at
    windows = np.moveaxis(sliding_window_view(rows, w, axis=2), -1, -2)
    hits = (windows == small[:, r][:, None, None]).all((0, 3, 4))
    return any(np.array_equal(large[:, dy : dy + h, dx : dx + w], small)
               for dy, dx in zip(*np.nonzero(hits), strict=True))  # fmt: skip


def one_drawing(x: np.ndarray, y: np.ndarray) -> bool:
    """Two composites (as placed) are one drawing re-rendered (module docstring)."""
    if np.abs(x - y).max() > REPEAT_MAX:
        return False
    shifted = np.maximum(shift_tolerant(x, y), shift_tolerant(y, x))
    return bool((shifted > REPEAT_LEVELS).mean() < REPEAT_SHARE)


def moves(x: np.ndarray, y: np.ndarray):
    """The overlaps of two same-size composites with y moved as a whole by each shift of at
    most ``REPEAT_MOVE`` pixels per axis and ``MOVE_MAX_SHARE`` of that side, no move first
    (a 2 px move of a 6 px wide picture would leave a third of it out)."""
    h, w = x.shape[1:3]
    ry, rx = (min(REPEAT_MOVE, int(MOVE_MAX_SHARE * side)) for side in (h, w))
    for dy, dx in sorted(
        ((dy, dx) for dy in range(-ry, ry + 1) for dx in range(-rx, rx + 1)),
        key=lambda m: abs(m[0]) + abs(m[1]),
    ):
        yield (x[:, max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)],
               y[:, max(0, -dy) : h + min(0, -dy), max(0, -dx) : w + min(0, -dx)])  # fmt: skip


def shift_tolerant(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per pixel of the composites ``x``, the smallest over y's 3x3 neighbourhood of the
    largest channel difference on either ground: a re-rendered edge moves by a pixel."""
    h, w = x.shape[1:3]
    padded = np.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    shifts = (padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3))
    return np.stack([np.abs(x - s).max(-1).max(0) for s in shifts]).min(0)


def union_groups(groups: list[int], pairs: list[tuple[int, int]]) -> dict[int, int]:
    """Group id -> the smallest group id it is joined to through ``pairs`` of indices."""
    parent = {g: g for g in groups}

    def root(g: int) -> int:
        while parent[g] != g:
            g = parent[g]
        return g

    for i, j in pairs:
        a, b = sorted((root(groups[i]), root(groups[j])))
        parent[b] = a
    return {g: root(g) for g in parent}


def main() -> None:
    parser = argparse.ArgumentParser(description="derive a real-image set's truth again")
    parser.add_argument("--corpus", type=Path, required=True)
    print(json.dumps(retruth(parser.parse_args().corpus), indent=1))


if __name__ == "__main__":
    main()

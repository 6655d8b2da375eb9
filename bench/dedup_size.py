"""The size of ``dedup/``: lines per file (code, docstrings, comments, blank) and the lines
of each larger part of the near rule that ``dedup_ablation.py`` takes out whole (functions
with their docstrings and the two blank lines around them, the rule's fields with their
comments, module constants with the comments above them; call sites not counted).

Usage: uv run python bench/dedup_size.py  (figures: docs/DEDUP.md, "What each part costs")
"""

from __future__ import annotations

import ast
from pathlib import Path

DEDUP = Path(__file__).resolve().parents[1] / "packages/data_engine/src/mindvl/data_engine/dedup"
# ``dedup_ablation.VARIANTS`` name -> file -> its top-level names ("rule.py": NearRule's
# fields and methods)
PARTS = {
    "resize_trial": {
        "pixels.py": ["resized_icons", "_mean_apart", "resized_pixels_fit", "_resize_fits",
                      "_count_off", "_edges", "_resize", "_srgb_decoded", "_srgb_encoded",
                      "_in_linear_light", "_linear", "_straight", "RESIZE_FILTERS", "CV_RESIZES",
                      "STRAIGHT_RESIZES", "LINEAR_FILTERS"],
        "search.py": ["resize_sized"],
        "rule.py": ["resize_min_scale", "resized_unfit_max_p99", "resize_screen_levels"],
    },
    "straight_and_linear": {
        "pixels.py": ["_edges", "_srgb_decoded", "_srgb_encoded", "_in_linear_light", "_linear",
                      "_straight", "STRAIGHT_RESIZES", "LINEAR_FILTERS"],
    },
    "icons_one_size": {
        "pixels.py": ["icons_differ", "_moved_changes", "_largest_differences", "_colour_codes",
                      "palette_reduced", "reencoded"],
        "rule.py": ["icon_move", "icon_levels", "icon_max_share", "icon_max_levels",
                    "transparent_levels", "transparent_max_share", "palette_max_colours",
                    "palette_max_strays"],
    },
    "icon_keys": {
        "fingerprint.py": ["icon_keys", "average_hash", "ICON_KEY_CONTRAST"],
        "candidates.py": ["band_keys", "judged_distance", "ICON_KINDS", "KIND_BUCKETS"],
        "rule.py": ["icon_key_max_hamming", "icon_crowded_bucket", "icon_crop_only_beyond"],
    },
    "pad_crop_found": {
        "pixels.py": ["nested_icons", "pixels_fit", "_pixels_over", "_off"],
        "compare.py": ["only_pad_or_crop"],
        "rule.py": ["pad_max_peak"],
    },
    "webp_trial": {"pixels.py": ["_webp", "webp_of", "WEBP_QUALITIES", "_colour_and_alpha"]},
    "jpeg_trials": {
        "pixels.py": ["_jpeg", "_encoded_fits", "jpeg_of", "JPEG_QUALITIES"],
        "compare.py": ["_jpeg_first"],
        "rule.py": ["jpeg_min_pixels", "jpeg_screen_levels"],
    },
    "phash_drift": {"fingerprint.py": ["phash_drift"], "rule.py": ["drift_min", "evidence"]},
}  # fmt: skip


def _docstrings(tree: ast.Module) -> set[int]:
    """The line numbers (1-based) of every docstring of a module."""
    lines = set()
    for n in ast.walk(tree):
        body = getattr(n, "body", None)
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and body:
            first = body[0]
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def file_lines(path: Path) -> dict[str, int]:
    """A file's lines by kind: code, docstring (blank lines inside one too), comment, blank."""
    lines = path.read_text().splitlines()
    docs = _docstrings(ast.parse("\n".join(lines)))
    out = {"code": 0, "doc": 0, "comment": 0, "blank": 0}
    for i, line in enumerate(lines, 1):
        kind = "doc" if i in docs else "blank" if not line.strip() else "code"
        kind = "comment" if kind == "code" and line.lstrip().startswith("#") else kind
        out[kind] += 1
    return out


def _with_comments(lines: list[str], node: ast.stmt) -> int:
    """A statement's lines with the comment lines right above it."""
    start = node.lineno
    while start > 1 and lines[start - 2].lstrip().startswith("#"):
        start -= 1
    return node.end_lineno - start + 1


def spans(path: Path) -> dict[str, int]:
    """Lines per top-level name of a file: a function or class with the two blank lines
    around it, a constant with its comments; in ``rule.py`` NearRule's fields (with their
    comments) and methods."""
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    out = {}
    for n in tree.body:
        if isinstance(n, ast.ClassDef) and path.name == "rule.py":
            for m in n.body:
                if isinstance(m, ast.AnnAssign):
                    out[m.target.id] = _with_comments(lines, m)
                elif isinstance(m, ast.FunctionDef):
                    out[m.name] = m.end_lineno - m.lineno + 2
        elif isinstance(n, (ast.FunctionDef, ast.ClassDef)):
            start = min([d.lineno for d in n.decorator_list] + [n.lineno])
            out[n.name] = n.end_lineno - start + 3
        elif isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name):
            out[n.targets[0].id] = _with_comments(lines, n)
    return out


def main() -> None:
    total = {"code": 0, "doc": 0, "comment": 0, "blank": 0}
    files = sorted(DEDUP.glob("*.py"))
    for path in files:
        got = file_lines(path)
        total = {k: total[k] + got[k] for k in total}
        print(
            f"{path.name:18} {sum(got.values()):5}  "
            + "  ".join(f"{k} {v}" for k, v in got.items())
        )
    print(
        f"{len(files)} files {sum(total.values()):5}  "
        + "  ".join(f"{k} {v}" for k, v in total.items())
    )
    for part, where in PARTS.items():
        n = sum(spans(DEDUP / file)[name] for file, names in where.items() for name in names)
        print(f"{part:20} {n:4} lines")


if __name__ == "__main__":
    main()

"""Each part of the near rule taken out, one at a time: does any part no longer earn its keep?

For every variant the dedup package is copied to a temporary folder with one check of
``compare.first_failing_check``, one candidate key or one larger part (a trial, a key kind)
switched off (source lines replaced: ``VARIANTS``; each replacement must match exactly once,
so a change of the code fails here loudly instead of measuring nothing), and a fresh process runs ``plan_dedup`` (default
recipe) with that copy first on its path over the real sets' and the kit seeds' feature
rows, computed once. Decisions are compared with the unpatched rule's: per corpus, drops
added, removed and moved to another survivor, and the figures before -> after (near recall,
precision, wrong drops; ``dedup_real.measure`` and ``dedup_quality.measure``).

Prints one line per variant as it goes and, at the end, a markdown table of all of them.

Usage: uv run python bench/dedup_ablation.py [--sets a,b,c,d] [--seeds 11,23,5,7,13,17,29]
        [--variants content,...] [--json bench/results/dedup_ablation.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dedup_quality import kit_rows
from dedup_quality import measure as kit_measure
from dedup_real import measure as real_measure
from dedup_real import rows_of

PACKAGE = Path(__file__).resolve().parents[1] / "packages/data_engine/src"
DEDUP = Path("mindvl/data_engine/dedup")
# name -> (file in dedup/, text, its replacement), or a list of those
VARIANTS = {
    "content": ("compare.py", "    if not contents_agree(a, b, rule):", "    if False:"),
    "trim_scale": ("compare.py", "        and not content_at_one_scale(a, b, rule)\n    ):",
                   "        and False\n    ):"),
    "one_size": ("compare.py", "        if (one_size_changed(a, b) > rule.one_size_levels).sum() > "
                 "rule.one_size_max_pixels:", "        if False:"),
    "sizes": ("compare.py", "        match = match_with_aspect(ta, tb, change, rule.max_aspect_log)",
              "        return match"),
    "pixels_nested": ("compare.py", "    if nested and only_pad_or_crop(a, b, rule):\n"
                      "        return \"pixels\"", ""),
    "pad_peak": ("compare.py", "        if unresized and not (_agrees(match, rule) and match.peak "
                 "<= rule.pad_max_peak):", "        if False:"),
    "crop_the_sizes_tell": ("compare.py", "    if sizes_in_reach(np.array(a.size), "
                            "np.array(b.size))[0] and content_at_one_scale(a, b, rule):",
                            "    if False:"),
    "crop_sizes": ("compare.py", "    if far and not crop_sized(*sizes, rule.crop_min_kept)[0]:",
                   "    if False:"),
    "resized_unfit_bound": ("compare.py", "    if resized and match.p99 > "
                            "rule.resized_unfit_max_p99:", "    if False:"),
    "stars_pixels_first": ("groups.py", "            if found > found_other or (\n"
                           "                found == found_other and ", "            if (\n"
                           "                "),
    "told_apart": ("groups.py", "        star = _told_apart_leave(star, sig_of, verifier)\n", ""),
    "levels": ("compare.py", "        if abs(float(x.mean()) - float(y.mean())) > "
               "rule.max_level_shift:", "        if False:"),
    "black_view": ("compare.py", "        if not _on_black(*parsed):",
                   "        if True:"),
    "icon_max_levels": ("pixels.py", "        if fits.any() and len(grounds) > 1:\n",
                        "        if False:\n"),
    "transparent_bound": ("pixels.py", "    if len(grounds) > 1 and not palette_reduced(a, b, "
                          "rule):", "    if False:"),
    "palette_exemption": ("pixels.py", "    if len(grounds) > 1 and not palette_reduced(a, b, "
                          "rule):", "    if len(grounds) > 1:"),
    "webp_alpha": ("pixels.py", "    if a.alpha is None or b.alpha is None or not "
                   "np.array_equal(a.alpha, b.alpha):", "    if a.alpha is None or b.alpha is None:"),
    "trimmed_phash_key": ("candidates.py", "    extra = np.flatnonzero((trim != 0) & "
                          "(trim != phashes))", "    extra = np.flatnonzero(trim != trim)"),
    "crop_keys": ("candidates.py", "    crops = [(i, k) for i, p in enumerate(parsed) if p for k "
                  "in dict.fromkeys(p.crops)\n             if k != phashes[i]]  # fmt: skip",
                  "    crops = []"),
    "crop_to_crop": ("candidates.py", "    ok |= (ka == KEY_CROP) & (kc == KEY_CROP) & (distance <= "
                     "rule.crop_to_crop_radius)\n", ""),
    "canvas_keys": ("candidates.py", "    found = (crops, *([(i, k[n]) for i, k in both if k[n]] "
                    "for n in (0, 1, 2)))",
                    "    found = (crops, [(i, k[0]) for i, k in both if k[0]], [], [])"),
    # the larger parts of the rule, each taken out whole (a part's lines: docs/DEDUP.md,
    # "What each part costs")
    "resize_trial": ("compare.py", "    if resized_icons(*sizes, True, True, rule)[0] and "
                     "resized_pixels_fit(a, b, rule):", "    if False:"),
    "straight_and_linear": [
        ("pixels.py", "    edges = _edges(parts[1], dst.size) if parts is not None and "
         "STRAIGHT_RESIZES else None", "    edges = None"),
        ("pixels.py", "    if any(fits(_linear(light, dst.size, how, len(grounds))) for how in "
         "LINEAR_FILTERS):", "    if False:"),
    ],
    "jpeg_trials": ("pixels.py", "    return any(_pixels_over(_jpeg(x, q), dst.native[0], rule) <= "
                    "rule.one_size_max_pixels\n               for q in JPEG_QUALITIES)",
                    "    return False"),
    "webp_trial": ("pixels.py", "    if a.alpha is None or b.alpha is None or not "
                   "np.array_equal(a.alpha, b.alpha):", "    if True:"),
    "icon_keys": ("candidates.py", "    both = [(i, icon_keys(p)) for i, p in enumerate(parsed) if "
                  "p and p.native_part is not None]", "    both = []"),
    "phash_drift": ("rule.py", "        drift = np.where(icon | (drift < self.drift_min), 0, drift)",
                    "        drift = 0 * drift"),
    "icons_one_size": ("compare.py", "        if found is None and all(has) and "
                       "icons_differ(a, b, rule):", "        if False:"),
    "pad_crop_found": ("compare.py", "    return bool(nested_icons(*sizes, True, True, rule)[0] and "
                       "pixels_fit(a, b, rule))", "    return False"),
}  # fmt: skip


def patched(root: Path, name: str) -> Path:
    """A copy of the data engine's source under ``root`` with variant ``name`` applied."""
    out = root / name
    shutil.copytree(PACKAGE, out, ignore=shutil.ignore_patterns("__pycache__"))
    if name == "base":
        return out
    found = VARIANTS[name]
    for file, old, new in found if isinstance(found, list) else [found]:
        path = out / DEDUP / file
        text = path.read_text()
        if text.count(old) != 1:
            raise SystemExit(
                f"variant {name}: its line is in {file} {text.count(old)} times, not once"
            )
        path.write_text(text.replace(old, new))
    return out


def decisions(src: Path, rows_file: Path) -> dict[str, dict[str, str]]:
    """Per corpus, dropped key -> survivor, from a fresh process with ``src`` first on its path."""
    code = (
        "import json, pickle, sys\n"
        "from dedup_quality import spec_of\n"
        "from mindvl.data_engine.dedup import plan_dedup\n"
        "corpora = pickle.loads(open(sys.argv[1], 'rb').read())\n"
        "out = {}\n"
        "for name, rows in corpora.items():\n"
        "    dec, _ = plan_dedup(rows, spec_of(None))\n"
        "    out[name] = {k: d.survivor for k, d in dec.items() if d.op}\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(Path(__file__).parent)])}
    done = subprocess.run([sys.executable, "-c", code, str(rows_file)], env=env, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return json.loads(done.stdout.splitlines()[-1])


def figures(corpus: dict, drops: dict[str, str]) -> dict:
    keys = {r["key"] for r in corpus["rows"]}
    if corpus["kind"] == "kit":
        from mindvl.data_engine.dedup.groups import Decision

        dec = {k: Decision(k, "", drops.get(k), "near_dedup" if k in drops else None) for k in keys}
        m = kit_measure(corpus["rows"], corpus["truth"], dec)
    else:
        cluster = {k: drops.get(k, k) for k in keys}
        m = real_measure(corpus["path"], corpus["truth"], keys, cluster, list(drops.items()))
    return {k: m[k] for k in ("near_recall", "precision", "wrong_drops")}


def cell(base: dict, got: dict) -> str:
    """One corpus's change as a table cell: "same", or drops +added -removed ~moved with the
    figures that moved (near recall, wrong drops)."""
    if not any(got[k] for k in ("added", "removed", "moved")):
        return "same"
    out = [f"+{got['added']} -{got['removed']} ~{got['moved']}"]
    for key, name in (("near_recall", "near"), ("wrong_drops", "wrong")):
        if got[key] != base[key]:
            out.append(f"{name} {base[key]} -> {got[key]}")
    return ", ".join(out)


def table(results: dict) -> str:
    """Markdown: one row per variant, one column per real set, one for the kit seeds (only
    those whose decisions moved)."""
    names = list(results["base"])
    sets = [n for n in names if not n.isdigit()]
    lines = ["| taken out | " + " | ".join(f"set {s}" for s in sets) + " | kit seeds |",
             "|---" * (len(sets) + 2) + "|"]  # fmt: skip
    for variant, got in results.items():
        if variant == "base":
            continue
        cells = [cell(results["base"][s], got[s]) for s in sets]
        kit = [f"{n}: {cell(results['base'][n], got[n])}" for n in names if n.isdigit()]
        kit = [k for k in kit if not k.endswith(": same")] or ["same"]
        lines.append(f"| `{variant}` | " + " | ".join(cells) + " | " + "; ".join(kit) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="a,b,c,d")
    parser.add_argument("--seeds", default="11,23,5,7,13,17,29")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    corpora = {}
    for s in filter(None, args.sets.split(",")):
        path = Path("bench/data/real_images" + ("" if s == "a" else f"_{s}"))
        truth = json.loads((path / "truth.json").read_text())["images"]
        corpora[s] = {"kind": "real", "path": path, "truth": truth, "rows": rows_of(path, truth)}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in filter(None, args.seeds.split(",")):
            rows, truth = kit_rows(Path(tmp) / f"kit{seed}", int(seed), 400)
            corpora[seed] = {"kind": "kit", "truth": truth, "rows": rows}
        rows_file = Path(tmp) / "rows.pkl"
        rows_file.write_bytes(pickle.dumps({k: c["rows"] for k, c in corpora.items()}))
        base = decisions(patched(Path(tmp), "base"), rows_file)
        results = {"base": {k: figures(corpora[k], d) for k, d in base.items()}}
        for name in filter(None, args.variants.split(",")):
            got = decisions(patched(Path(tmp), name), rows_file)
            results[name] = {}
            for k, d in got.items():
                b = base[k]
                moved = sum(d[x] != b[x] for x in set(d) & set(b))
                change = {"added": len(set(d) - set(b)), "removed": len(set(b) - set(d)),
                          "moved": moved}  # fmt: skip
                results[name][k] = {
                    **change,
                    **(figures(corpora[k], d) if any(change.values()) else {}),
                }
            print(name, json.dumps(results[name]), flush=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()

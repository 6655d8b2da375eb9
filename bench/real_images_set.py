"""Build a real-image dedup benchmark from Debian packages of icon themes, flags and line art.

Originals are the packages' own pictures (transparent RGBA and grey+alpha PNGs, palette
PNGs/GIFs with a transparent index, XPM line art), one icon size per theme so that a theme's
hand-drawn 16 and 48 px versions of one icon are not two versions of one picture. The
tuxpaint and openclipart packages are deliberately not used (kept aside to judge the result).

Truth: ``real_images_truth.py`` (by construction, plus a pixel check of the originals).

Steps: ``apt-get download`` (no root needed), ``dpkg-deb -x``, select, plant. The corpus goes
to ``--out`` (default ``bench/data/real_images``, git-ignored) as ``images/`` plus
``truth.json``; the same package versions give the same corpus.

``--set b`` builds a second corpus the same way from other packages (``SOURCES_B``: other
icon themes, 16x11 flags, toolbar and window-manager icons, emoticons), which no setting of
the rule was tuned on, into ``bench/data/real_images_b``; ``--set c`` a third
(``SOURCES_C``: nation flags, game sprites, two more icon themes) into
``bench/data/real_images_c``; ``--set d`` a fourth (``SOURCES_D``: an icon theme, a recolour
of set a's gnome-colors, widget assets, game sprites, city tiles) into
``bench/data/real_images_d``; ``--set e`` a fifth, clip art (``SOURCES_E``: Scratch's
costumes and backgrounds) into ``bench/data/real_images_e``; ``--set f`` a sixth, clip art
again (``SOURCES_F``: pysiogame's Art4Apps clip art, cards, shapes) into
``bench/data/real_images_f``.

Usage: uv run python bench/real_images_set.py [--set a|b|c|d|e|f] [--work /tmp/real_images_debs]
        [--out bench/data/real_images] [--cap 650] [--plant-share 0.25]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

from PIL import Image
from real_images_truth import composites, rgba_key, truth_groups

# package -> glob of the pictures taken from it (one icon size per theme)
SOURCES = {
    "gnome-screensaver-flags": "usr/share/backgrounds/flags/*.gif",
    "fvwm-icons": "usr/share/**/*.xpm",
    "famfamfam-silk": "usr/share/**/*.png",
    "tango-icon-theme": "usr/share/icons/Tango/32x32/*/*.png",
    "gnome-icon-theme": "usr/share/icons/gnome/48x48/*/*.png",
    "mate-icon-theme": "usr/share/icons/mate/48x48/*/*.png",
    "oxygen-icon-theme": "usr/share/icons/oxygen/base/48x48/*/*.png",
    "lxde-icon-theme": "usr/share/icons/nuoveXT2/48x48/*/*.png",
    "gnome-colors-common": "usr/share/icons/gnome-colors-common/24x24/*/*.png",
}
# A second set that no dedup setting was tuned on (``--set b``): other themes, flags at 16x11,
# toolbar and window-manager icons (XPM, TIFF), emoticons, GIMP's legacy icons.
SOURCES_B = {
    "famfamfam-flag-png": "usr/share/flags/countries/16x11/*.png",
    "adwaita-icon-theme": "usr/share/icons/Adwaita/48x48/legacy/*.png",
    "elementary-xfce-icon-theme": "usr/share/icons/elementary-xfce/*/48/*.png",
    "faenza-icon-theme": "usr/share/icons/Faenza/*/32/*.png",
    "gnome-brave-icon-theme": "usr/share/icons/gnome-brave/32x32/*/*.png",
    "gimp-data": "usr/share/gimp/2.0/icons/Legacy/16x16/*/*.png",
    "pidgin-data": "usr/share/pixmaps/pidgin/emotes/default/*.png",
    "icewm-common": "usr/share/icewm/icons/*_32x32.xpm",
    "emacs-common": "usr/share/emacs/*/etc/images/**/*.xpm",
    "wmaker-common": "usr/share/WindowMaker/Icons/*.*",
}
# A third (``--set c``): game sprites and flags, two more icon themes.
SOURCES_C = {
    "freeciv-data": "usr/share/games/freeciv/flags/*-large.png",
    "moka-icon-theme": "usr/share/icons/Moka/48x48/*/*.png",
    "paper-icon-theme": "usr/share/icons/Paper/32x32/*/*.png",
    "pingus-data": "usr/share/games/pingus/data/images/**/*.png",
    "frozen-bubble-data": "usr/share/games/frozen-bubble/gfx/*.png",
    "blueman": "usr/share/blueman/pixmaps/*.png",
}
# A fourth (``--set d``), built after the changes that sets b and c led to, to check them:
# another icon theme and a recolour of set a's gnome-colors, widget assets, game sprites,
# hats and flags, isometric city tiles.
SOURCES_D = {
    "yaru-theme-icon": "usr/share/icons/Yaru/48x48/*/*.png",
    "gnome-dust-icon-theme": "usr/share/icons/gnome-dust/32x32/*/*.png",
    "greybird-gtk-theme": "usr/share/themes/Greybird/gtk-3.0/assets/*.png",
    "tuxmath-data": "usr/share/tuxmath/images/**/*.png",
    "neverball-data": "usr/share/games/neverball/**/*.png",
    "xpenguins": "usr/share/xpenguins/themes/**/*.xpm",
    "hedgewars-data": "usr/share/games/hedgewars/Data/Graphics/*/*.png",
    "lincity-ng-data": "usr/share/games/lincity-ng/images/tiles/*.png",
}
# A fifth (``--set e``), clip art: Scratch 1.4's costumes and backgrounds (animals, people,
# things, letters in ten styles, scenes; GIFs with a transparent index, PNGs, JPEGs).
SOURCES_E = {"scratch": "usr/share/scratch/Media/[BC]*/**/*.*"}
# A sixth (``--set f``), clip art again, built to check set e's figures: pysiogame's pictures
# (Art4Apps clip art as JPEGs on white, memory and matching cards in two colour schemes,
# one shape in eight colours, flashcards, backgrounds).
SOURCES_F = {"pysiogame": "usr/share/games/pysiogame/res/images/**/*.*"}
SETS = {"a": SOURCES, "b": SOURCES_B, "c": SOURCES_C, "d": SOURCES_D, "e": SOURCES_E,
        "f": SOURCES_F}  # fmt: skip
# What each package's pictures are, for figures per kind (``dedup_real.py``'s ``by_kind``):
# the kinds issue #18 names (icons, flags, clip art) apart from game sprites and tiles
# (animation frames, building stages) and a GTK theme's widget assets (one glyph in shades).
KINDS = {
    "flags": ("gnome-screensaver-flags", "famfamfam-flag-png", "freeciv-data"),
    "clip art": ("scratch", "pysiogame"),
    "sprites": ("pingus-data", "frozen-bubble-data", "tuxmath-data", "neverball-data",
                "xpenguins", "hedgewars-data", "lincity-ng-data"),
    "widgets": ("greybird-gtk-theme",),
}  # every other package: "icons" (themes, toolbar and window-manager icons, emoticons)  # fmt: skip
# ... but pysiogame's controls (buttons in their states, panels, decor), beside its clip art
WIDGET_PATHS = {
    "pysiogame": ("res/images/[^/]+$", "/(dialog|home_icons|info_bar|score_bar|unit_bg)/")
}
EXCLUDED = ("tuxpaint", "openclipart")
NEAR_KINDS = ("resize", "jpeg_white", "pad", "crop")
EXACT_KINDS = ("copy", "resave")


def kind_of(package: str, path: str = "") -> str:
    if any(re.search(p, path) for p in WIDGET_PATHS.get(package, ())):
        return "widgets"
    return next((k for k, packages in KINDS.items() if package in packages), "icons")


def keyed(text: str, salt: str = "") -> float:
    """A uniform number in [0, 1) from a keyed hash (deterministic selection)."""
    return int.from_bytes(hashlib.sha256(f"{salt}:{text}".encode()).digest()[:8], "big") / 2**64


def fetch(work: Path, sources: dict[str, str]) -> dict[str, str]:
    """Download and unpack every package of ``sources``; their versions by name."""
    work.mkdir(parents=True, exist_ok=True)
    assert not any(x in p for p in sources for x in EXCLUDED)
    missing = [p for p in sources if not list(work.glob(f"{p}_*.deb"))]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=work, check=True)
    versions = {}
    for p in sources:
        deb = sorted(work.glob(f"{p}_*.deb"))[-1]
        versions[p] = deb.name.split("_")[1].replace("%3a", ":")
        if not (work / "x" / p).is_dir():
            (work / "x" / p).mkdir(parents=True)
            subprocess.run(["dpkg-deb", "-x", str(deb), str(work / "x" / p)], check=True)
    return versions


def has_transparency(img: Image.Image) -> bool:
    return img.convert("RGBA").getextrema()[3][0] < 255


def originals(work: Path, cap: int, sources: dict[str, str]) -> list[tuple[str, str, bytes]]:
    """(package, relative path, encoded bytes): each package's real files (symlinks and
    repeated realpaths skipped), capped by a keyed hash; anything but PNG and GIF (XPM,
    TIFF) re-saved as PNG (the readers take neither; the pixels are unchanged)."""
    out = []
    for package, pattern in sources.items():
        root = work / "x" / package
        seen, files = set(), []
        for f in sorted(root.glob(pattern)):
            if f.is_symlink() or f.resolve() in seen:
                continue
            seen.add(f.resolve())
            files.append(f)
        files = sorted(files, key=lambda f: keyed(str(f.relative_to(root))))[:cap]
        for f in sorted(files):
            data = f.read_bytes()
            try:
                img = Image.open(io.BytesIO(data))
                img.load()
            except Exception:  # noqa: BLE001 (a broken file in a package: not a picture)
                continue
            if img.format not in ("PNG", "GIF"):
                buf = io.BytesIO()
                img.save(buf, "PNG")
                data = buf.getvalue()
            out.append((package, str(f.relative_to(root)), data))
    return out


def plant(img: Image.Image, kind: str, r: float) -> tuple[bytes, str]:
    """One planted copy of ``img`` (``r`` in [0, 1) picks its parameters): bytes, extension."""
    buf = io.BytesIO()
    rgba = img.convert("RGBA")
    w, h = rgba.size
    if kind == "resave":
        img.save(buf, "PNG", optimize=True)
        return buf.getvalue(), "png"
    if kind in ("resize", "jpeg_white"):
        # small icons are scaled up (x1.5-2), larger ones down (0.55-0.9)
        s = 1.5 + 0.5 * r if max(w, h) < 32 else 0.55 + 0.35 * r
        size = (max(1, round(w * s)), max(1, round(h * s)))
        out = rgba.resize(size, Image.Resampling.LANCZOS)
        if kind == "resize":
            out.save(buf, "PNG")
            return buf.getvalue(), "png"
        flat = Image.alpha_composite(Image.new("RGBA", size, (255,) * 4), out).convert("RGB")
        flat.save(buf, "JPEG", quality=80 + round(12 * r))
        return buf.getvalue(), "jpg"
    if kind == "pad":  # 3-6% per side, transparent (white when the picture is opaque)
        p = 0.03 + 0.03 * r
        pw, ph = max(1, round(w * p)), max(1, round(h * p))
        fill = (0, 0, 0, 0) if has_transparency(img) else (255, 255, 255, 255)
        out = Image.new("RGBA", (w + 2 * pw, h + 2 * ph), fill)
        out.paste(rgba, (pw, ph))
        out.save(buf, "PNG")
        return buf.getvalue(), "png"
    if kind == "crop":  # keep 90-95% of each side, anchored by r
        keep = 0.90 + 0.05 * r
        cw, ch = max(1, round(w * keep)), max(1, round(h * keep))
        x0, y0 = round((w - cw) * r), round((h - ch) * (1 - r))
        rgba.crop((x0, y0, x0 + cw, y0 + ch)).save(buf, "PNG")
        return buf.getvalue(), "png"
    raise ValueError(f"unknown plant kind {kind!r}")


def build(work: Path, out: Path, cap: int, share: float, sources: dict[str, str]) -> dict:
    versions = fetch(work, sources)
    images = out / "images"
    shutil.rmtree(images, ignore_errors=True)
    images.mkdir(parents=True)
    truth, flat_groups, pictures, keys = {}, {}, [], []
    for package, rel, data in originals(work, cap, sources):
        img = Image.open(io.BytesIO(data))
        img.load()
        pictures.append(composites(img))
        keys.append(rgba_key(img))
        on_white = hashlib.sha256(pictures[-1][0].tobytes()).hexdigest()
        flat_groups.setdefault(on_white, set()).add(keys[-1])
        name = hashlib.sha256(f"{package}/{rel}".encode()).hexdigest()[:16]
        ext = {"GIF": "gif", "PNG": "png"}.get(Image.open(io.BytesIO(data)).format, "png")
        (images / f"{name}.{ext}").write_bytes(data)
        truth[name] = {"file": f"{name}.{ext}", "kind": "original",
                       "package": package, "path": rel, "mode": img.mode,
                       "transparent": has_transparency(img), "size": list(img.size)}  # fmt: skip
        if keyed(name, "plant") >= share:
            continue
        kinds = EXACT_KINDS + NEAR_KINDS
        kind = kinds[int(keyed(name, "kind") * len(kinds))]
        copy, ext = (data, ext) if kind == "copy" else plant(img, kind, keyed(name, "r"))
        cname = hashlib.sha256(f"{name}:{kind}".encode()).hexdigest()[:16]
        (images / f"{cname}.{ext}").write_bytes(copy)
        truth[cname] = {"file": f"{cname}.{ext}", "kind": kind,
                        "package": package, "path": rel, "of": name}  # fmt: skip
    names = [n for n, t in truth.items() if t["kind"] == "original"]  # in the order added
    groups, counts = truth_groups(pictures, keys, [truth[n]["transparent"] for n in names])
    group_of = dict(zip(names, groups, strict=True))
    for name, t in truth.items():
        t["group"] = group_of[t.get("of", name)]
    summary = {
        "packages": versions,
        "originals": len(names),
        "planted": {k: sum(t["kind"] == k for t in truth.values()) for k in EXACT_KINDS + NEAR_KINDS},
        **counts,
        "flat_equal_alpha_differs": sum(len(g) - 1 for g in flat_groups.values()),
        "modes": {},
    }  # fmt: skip
    for t in truth.values():
        if t["kind"] == "original":
            m = t["mode"] + (
                "+alpha" if t["transparent"] and t["mode"] not in ("RGBA", "LA") else ""
            )
            summary["modes"][m] = summary["modes"].get(m, 0) + 1
    (out / "truth.json").write_text(json.dumps({"summary": summary, "images": truth}, indent=0))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/real_images_debs"))
    parser.add_argument(
        "--set",
        choices=sorted(SETS),
        default="a",
        help="a: the packages dedup was tuned on; b, c: sets it was not; d: a check of the "
        "changes b and c led to; e, f: clip art",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="default bench/data/real_images (set a), real_images_b, ... _f",
    )
    parser.add_argument("--cap", type=int, default=650, help="pictures per package at most")
    parser.add_argument("--plant-share", type=float, default=0.25)
    args = parser.parse_args()
    out = args.out or Path("bench/data/real_images" + ("" if args.set == "a" else f"_{args.set}"))
    print(json.dumps(build(args.work, out, args.cap, args.plant_share, SETS[args.set]), indent=1))


if __name__ == "__main__":
    main()

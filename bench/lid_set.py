"""Build a real multilingual short-text set for language ID from Debian packages' translations.

Sources (truth = the locale tag the translation is filed under, English = the source
strings): the ``Name`` / ``GenericName`` / ``Comment`` fields of ``.desktop`` files and the
short message strings of the packages' gettext ``.mo`` catalogs. The packages are desktop
applications chosen for their many translations; the tuxpaint and openclipart packages are
deliberately not used (they are kept aside to judge the result).

Steps: ``apt-get download`` the packages (``apt-get update`` once first), unpack them with
``dpkg-deb -x``, extract the strings, clean them (GTK/Qt mnemonics removed; strings with
format placeholders, markup, paths or URLs skipped), keep 1-12 words, dedup on the
case-folded text, and drop every text filed under more than one language (an untranslated
string, a loanword, or a word shared by related languages: its truth is ambiguous). Each
language is capped (``--cap``; English, ``--cap-en``, about a third of the set, and the
other reported languages de, ja, ru, ``--cap-kept``, larger) by a keyed hash, and every
text goes to the ``tune`` or ``heldout`` half by the parity of the same hash. The same
package versions give the same file (bookworm's, when the committed set was built).

Usage: uv run python bench/lid_set.py [--work /tmp/lid_debs] [--out bench/data/lid_short_texts.tsv]
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import polib

PACKAGES = [
    "baobab",
    "cheese",
    "eog",
    "evince",
    "file-roller",
    "gedit",
    "gnome-calculator",
    "gnome-characters",
    "gnome-chess",
    "gnome-clocks",
    "gnome-control-center-data",
    "gnome-disk-utility",
    "gnome-maps",
    "gnome-mines",
    "gnome-software-common",
    "gnome-sudoku",
    "gnome-system-monitor",
    "gnome-terminal-data",
    "gnome-text-editor",
    "gnome-weather",
    "iagno",
    "lightsoff",
    "mousepad",
    "nautilus-data",
    "quadrapassel",
    "rhythmbox-data",
    "ristretto",
    "shotwell-common",
    "simple-scan",
    "swell-foop",
    "tali",
    "thunar",
    "totem",
    "xfce4-terminal",
]
EXCLUDED = ("tuxpaint", "openclipart")
DESKTOP_KEYS = ("Name", "GenericName", "Comment")
KEPT_LANGUAGES = ("de", "ja", "ru")  # reported per language besides English: larger caps
MNEMONIC = re.compile(r"[_&](?=\w)")  # GTK "_Open", "Re_name"; Qt "&Open"
SCRIPT_VARIANTS = ("shaw",)  # en@shaw is English in the Shavian alphabet: not English text
SKIP = re.compile(r"%|\{|\}|<|>|\\|/|@|https?:|\n|\t|=|\$|\|")
HEADER = "# split\tlang\tsource\ttext\n"


def locale_language(tag: str) -> str:
    """``pt_BR`` -> ``pt``, ``sr@latin`` -> ``sr``, ``en_GB`` -> ``en``."""
    return re.split(r"[_@.]", tag)[0].lower()


def clean(text: str) -> str | None:
    """A short natural-language string, or None for format strings, markup and the like."""
    if text.count("_") + text.count("&") > 1:
        return None  # identifiers (GSettings keys), not a mnemonic
    text = " ".join(MNEMONIC.sub("", text).split())
    if not text or SKIP.search(text) or not any(ch.isalpha() for ch in text):
        return None
    return text if 1 <= len(text.split()) <= 12 and len(text) <= 120 else None


def download(packages: list[str], work: Path) -> list[Path]:
    if any(bad in p for p in packages for bad in EXCLUDED):
        raise SystemExit(f"lid_set: the {EXCLUDED} packages are kept aside; do not use them")
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "download", "-qq", *packages], cwd=work, check=True)
    trees = []
    (work / "x").mkdir(exist_ok=True)
    for deb in sorted(work.glob("*.deb")):
        tree = work / "x" / deb.name.split("_")[0]
        if not tree.exists():
            subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
        trees.append(tree)
    return trees


def desktop_strings(path: Path):
    """(lang, text) from one .desktop file's main group."""
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return
    if not parser.has_section("Desktop Entry"):
        return
    for key, value in parser.items("Desktop Entry"):
        base, _, tag = key.partition("[")
        if base in DESKTOP_KEYS and tag.rstrip("]").partition("@")[2] not in SCRIPT_VARIANTS:
            yield (locale_language(tag.rstrip("]")) if tag else "en"), value


def catalog_strings(path: Path, lang: str):
    """(lang, text) pairs from one .mo catalog: the English msgid and its translation."""
    try:
        catalog = polib.mofile(str(path))
    except (OSError, ValueError):
        return
    for entry in catalog:
        if entry.msgid and entry.msgstr and not entry.msgid_plural and not entry.obsolete:
            yield "en", entry.msgid
            yield lang, entry.msgstr


def extract(tree: Path):
    """(lang, text, source) for every string of one unpacked package."""
    name = tree.name
    for path in sorted(tree.rglob("*.desktop")):
        for lang, text in desktop_strings(path):
            yield lang, text, f"{name}:desktop"
    for path in sorted(tree.rglob("LC_MESSAGES/*.mo")):
        tag = path.parent.parent.name
        if tag.partition("@")[2] in SCRIPT_VARIANTS:
            continue
        lang = locale_language(tag)
        for lang_, text in catalog_strings(path, lang):
            yield lang_, text, f"{name}:mo"


def keyed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(("lid-set:" + text).encode()).digest()[:8], "big")


def build(trees: list[Path], cap: int, cap_kept: int, cap_en: int) -> tuple[list[tuple], dict]:
    labels: dict[str, set[str]] = defaultdict(set)
    first: dict[str, tuple[str, str]] = {}
    for tree in trees:
        for lang, raw, source in extract(tree):
            text = clean(raw)
            if text is None:
                continue
            key = text.casefold()
            labels[key].add(lang)
            first.setdefault(key, (text, source))
    by_lang: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
    ambiguous = 0
    for key, langs in labels.items():
        if len(langs) > 1:
            ambiguous += 1
            continue
        text, source = first[key]
        by_lang[next(iter(langs))].append((keyed(key), text, source))
    rows = []
    for lang in sorted(by_lang):
        limit = cap_en if lang == "en" else cap_kept if lang in KEPT_LANGUAGES else cap
        for h, text, source in sorted(by_lang[lang])[:limit]:
            rows.append(("tune" if h % 2 == 0 else "heldout", lang, source, text))
    stats = {"distinct_texts": len(labels), "ambiguous_dropped": ambiguous, "rows": len(rows)}
    return rows, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/lid_debs"))
    ap.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "data" / "lid_short_texts.tsv"
    )
    ap.add_argument("--cap", type=int, default=30, help="texts per language")
    ap.add_argument("--cap-kept", type=int, default=400, help="texts for de, ja, ru")
    ap.add_argument("--cap-en", type=int, default=2400, help="English texts (~1/3 of the set)")
    args = ap.parse_args()
    trees = download(PACKAGES, args.work)
    rows, stats = build(trees, args.cap, args.cap_kept, args.cap_en)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        f.write(f"# built by bench/lid_set.py from {len(trees)} Debian packages: {stats}\n")
        f.write(HEADER)
        for row in rows:
            f.write("\t".join(row) + "\n")
    langs = {lang for _, lang, _, _ in rows}
    print(f"wrote {args.out}: {len(rows)} rows, {len(langs)} languages, {stats}")


if __name__ == "__main__":
    main()

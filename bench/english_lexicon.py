"""Build ops/data/english_words.txt.gz, the English word list ``language_id`` checks words against.

Source: SCOWL's American and British English lists as Debian ships them (packages
``wamerican`` and ``wbritish``, /usr/share/dict). Words are lowercased, possessives ("'s")
left out, sorted; the SCOWL copyright notice goes first, as its licence asks. Fetched with
``apt-get download`` (``apt-get update`` once first) and unpacked with ``dpkg-deb -x``.
Usage: uv run python bench/english_lexicon.py [--work /tmp/lid_debs]
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
from pathlib import Path

PACKAGES = {"wamerican": "american-english", "wbritish": "british-english"}
OUT = (
    Path(__file__).parents[1]
    / "packages/data_engine/src/mindvl/data_engine/ops/data/english_words.txt.gz"
)


def notice(tree: Path) -> list[str]:
    """The licence paragraph of the package's copyright file, as comment lines."""
    text = (tree / "usr/share/doc/wamerican/copyright").read_text(encoding="utf-8")
    start = text.index("SCOWL (Spell Checker")
    end = text.index("Alan Beale")
    return ["# " + line for line in text[start:end].strip().splitlines()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/lid_debs"))
    args = ap.parse_args()
    work = args.work / "dict"
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "download", "-qq", *PACKAGES], cwd=work, check=True)
    tree = work / "x"
    for deb in sorted(work.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True)
    words: set[str] = set()
    for name in PACKAGES.values():
        for line in (tree / "usr/share/dict" / name).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.endswith("'s"):
                words.add(line.strip().lower())
    header = [
        f"# English words for mindvl's language_id: {len(words)} lowercased words of",
        "# SCOWL's American and British lists (Debian wamerican, wbritish), built by",
        "# bench/english_lexicon.py. SCOWL's notice:",
        *notice(tree),
    ]
    data = "\n".join([*header, *sorted(words)]) + "\n"
    OUT.write_bytes(gzip.compress(data.encode("utf-8"), mtime=0))
    print(f"wrote {OUT}: {len(words)} words, {OUT.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()

"""Render a build's ``report.html`` in headless Chromium and save a full-page PNG.

    uv run python bench/report_screenshot.py BUILD_DIR [--out bench/results/report.png]

Rewrites nothing in BUILD_DIR. With ``--regenerate`` the report is first re-rendered from
the build's manifest and shards (``mix.report.write_report``, no timings) into a temp copy
of ``report.html``, so the current renderer is what gets screenshot. Needs Debian's
``chromium`` (``apt-get install -y chromium``); exits 2 with that hint when it is missing.
Also checks that the page is static (no scripts, no URLs but the SVG namespaces) and prints
its size, chart and thumbnail counts as JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)  # fmt: skip


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


def page_height(html: str) -> int:
    """A rough full-page height in CSS px: charts' heights in pt plus text and galleries."""
    charts = sum(float(h) * 4 / 3 for h in re.findall(r'<svg[^>]*height="([\d.]+)pt"', html))
    rows = html.count("<tr>") * 22 + html.count("<h2>") * 60 + html.count("<h3>") * 40
    thumbs = html.count('class="thumb"') // 4 * 260
    return int(min(30000, 1200 + charts + rows + thumbs))


def screenshot(html_path: Path, png: Path, width: int = 1200) -> None:
    exe = chromium()
    if exe is None:
        sys.exit("chromium not found: apt-get update && apt-get install -y chromium")
    height = page_height(html_path.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as profile:
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
               f"--window-size={width},{height}", f"--screenshot={png}", html_path.as_uri()]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, timeout=180)
    if not png.is_file() or png.stat().st_size == 0:
        sys.exit(f"chromium wrote no screenshot to {png}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", type=Path)
    ap.add_argument("--out", type=Path, default=Path("bench/results/report_screenshot.png"))
    ap.add_argument("--regenerate", action="store_true")
    args = ap.parse_args()
    html = args.build / "report.html"
    with tempfile.TemporaryDirectory() as tmp:
        if args.regenerate:
            from mindvl.common.manifest import RatioManifest
            from mindvl.common.report.build_report import build_document
            from mindvl.common.report.document import render_html
            from mindvl.data_engine.mix.report import sample_thumbs

            m = RatioManifest.load(args.build)
            html = Path(tmp) / "report.html"
            doc = build_document(m.model_dump(mode="json"), sample_thumbs(args.build, m))
            html.write_text(render_html(doc), encoding="utf-8")
        text = html.read_text(encoding="utf-8")
        urls = re.findall(r"https?://(?!www\.w3\.org/(?:2000/svg|1999/xlink)\")\S+", text)
        if "<script" in text or urls:
            sys.exit(f"{html}: not a static page (scripts or URLs: {urls[:3]})")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot(html, args.out)
    print(json.dumps({"report": str(html), "bytes": len(text.encode()), "charts": text.count("<svg"),
                      "thumbnails": text.count('class="thumb"'), "png": str(args.out),
                      "png_bytes": args.out.stat().st_size}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()

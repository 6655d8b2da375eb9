"""``report.html``: a static page next to the manifest (no server, no external files).

The page is the build summary of :mod:`mindvl.common.report.build_report` rendered to
HTML: funnel per source through the stages and by reason, mixture by fractions, samples
and tokens, sample thumbnails with their text, timings and shards, with matplotlib
charts inlined as SVG. It is made from the written build only (manifest + shards), so it
can be rewritten at any time; without timings, the same build gives the same bytes.
"""

from __future__ import annotations

import base64
import io
import tarfile
from pathlib import Path

from mindvl.common.manifest import RatioManifest
from mindvl.common.pictures import flatten_to_rgb
from mindvl.common.report.build_report import build_document
from mindvl.common.report.document import Thumb, render_html
from mindvl.common.sample import IMAGE_PLACEHOLDER, Sample

REPORT_NAME = "report.html"
THUMB_PX = 160
THUMBS_PER_CATEGORY = 4
MAX_SCANNED = 4096  # samples read from the shards at most while looking for thumbnails
TEXT_CHARS = 220


def thumbnail(data: bytes, px: int = THUMB_PX) -> str | None:
    """A data: URI of a small JPEG, or None if the image cannot be decoded."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im = flatten_to_rgb(im)
            im.thumbnail((px, px))
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=75)
    except Exception:  # a thumbnail is decoration; never fail a build for it
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def sample_text(sample: Sample) -> str:
    """The caption, or the first question and its answer; cut to TEXT_CHARS."""
    if sample.caption is not None:
        text = sample.caption
    else:
        turns = sample.conversation or []
        q = next((t.content for t in turns if t.role == "user"), "")
        a = next((t.content for t in turns if t.role == "assistant"), "")
        text = f"Q: {q.replace(IMAGE_PLACEHOLDER, ' ')} A: {a}"
    text = " ".join(text.split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "\u2026"


def sample_thumbs(out_dir: Path, m: RatioManifest) -> dict[str, list[Thumb]]:
    """The first THUMBS_PER_CATEGORY distinct samples with an image per category, in shard
    order (repeats skipped), read back from the shards."""
    wanted = {c.category for c in m.mixture.categories if c.samples}
    out: dict[str, list[Thumb]] = {}
    pending: dict[str, Sample] = {}  # image member name -> its sample
    scanned = 0
    for shard in m.shards:
        with tarfile.open(out_dir / shard.name) as tf:
            for info in tf:
                if not info.isfile():
                    continue
                data = tf.extractfile(info).read()
                if info.name.endswith(".json"):
                    scanned += 1
                    sample = Sample.from_json_bytes(data)
                    got = out.setdefault(sample.category, [])
                    if (
                        sample.images
                        and sample.origin_key is None
                        and len(got) < THUMBS_PER_CATEGORY
                    ):
                        pending[f"{sample.key}.{sample.images[0].member}"] = sample
                elif info.name in pending:
                    s = pending.pop(info.name)
                    out[s.category].append(Thumb(thumbnail(data), s.key, sample_text(s)))
                full = all(len(out.get(c, [])) >= THUMBS_PER_CATEGORY for c in wanted)
                if (full and not pending) or scanned >= MAX_SCANNED:
                    return {c: t for c, t in out.items() if t}
    return {c: t for c, t in out.items() if t}


def write_report(out_dir: Path, m: RatioManifest, timings: dict[str, float] | None = None) -> Path:
    """Render the build's summary into ``out_dir/report.html`` (atomically)."""
    doc = build_document(m.model_dump(mode="json"), sample_thumbs(out_dir, m), timings)
    path = Path(out_dir) / REPORT_NAME
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_html(doc), encoding="utf-8")
    tmp.replace(path)
    return path

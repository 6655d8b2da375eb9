"""Turning a rendering into a record, with its planted fault (if any) applied."""

from __future__ import annotations

import numpy as np

from mindvl.data_engine.synth import faults as F
from mindvl.data_engine.synth.encoding import encode
from mindvl.data_engine.synth.i18n import translate
from mindvl.data_engine.synth.records import Record, Rendered


def make_record(
    rendered: Rendered,
    category: str,
    image_format: str,
    quality: int,
    fault: str | None,
    rng: np.random.Generator,
    fmt: str,
) -> Record:
    """Encode ``rendered`` and plant ``fault``; ``fmt`` is the raw output format, which decides
    how a non-UTF-8 caption can be stored."""
    img = rendered.image
    if fault == "tiny":
        img = F.shrink_tiny(img)
    elif fault == "extreme_aspect":
        img = F.stretch_extreme(rng, img)
    data: bytes | None = encode(img, image_format, quality)
    width, height = img.size
    if fault == "truncated":
        data = data[: len(data) // 2]
    elif fault == "zero_byte":
        data = b""
    elif fault == "huge_header":
        data, image_format = F.huge_header_png(rng), "png"
    elif fault == "missing_image":
        data = None
    if fault in ("truncated", "zero_byte", "huge_header", "missing_image"):
        width = height = 0

    caption, answer = rendered.caption, rendered.answer
    more_qa = rendered.more_qa
    caption_bytes = caption.encode("utf-8")
    if fault == "empty_caption":
        caption, caption_bytes = "", b""
    elif fault == "long_caption":
        caption = F.long_caption(rng, caption)
        caption_bytes = caption.encode("utf-8")
    elif fault == "non_utf8_caption":
        if fmt == "parquet":
            caption = F.replacement_garbage(rng, caption)
            caption_bytes = caption.encode("utf-8")
        else:
            caption_bytes = F.non_utf8_bytes(caption)
            caption = caption_bytes.decode("utf-8", "replace")
    elif fault == "non_english_caption":
        caption, answer = translate(rng, category, rendered.n_objects, answer)
        more_qa = ()  # follow-ups stay English: leave them out of a translated sample
        caption_bytes = caption.encode("utf-8")

    return Record(
        id="",
        category=category,
        image=data,
        image_format=image_format,
        width=width,
        height=height,
        caption=caption_bytes,
        question=rendered.question,
        answer=answer,
        truth_caption=caption,
        faults=(fault,) if fault else (),
        low_info=bool(rendered.low_info_kind),
        more_qa=more_qa,
    )

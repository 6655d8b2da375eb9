"""Typed records passed between the kit's steps: a rendering, a record to write, a summary."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image

CATEGORIES = ("caption", "ocr", "grounding", "chart")
FORMATS = ("llava", "webdataset", "parquet", "folder")


@dataclass(frozen=True)
class Rendered:
    """One drawn image and the text that follows from it (English, clean)."""

    image: Image.Image
    caption: str
    question: str
    answer: str
    n_objects: int = 0
    low_info_kind: str = ""  # "icon", "document", "line_art" for hard negatives
    more_qa: tuple[tuple[str, str], ...] = ()  # other (question, answer) pairs true of it
    # What two renderings must differ in to be two pictures (``kit.DistinctPictures``): the
    # content (``layout_key``, e.g. the caption) and its geometry relative to the canvas.
    # An empty ``layout`` is never checked.
    layout_key: str = ""
    layout: tuple[float, ...] = ()


@dataclass(frozen=True)
class Record:
    """One record as it will be written; ``image is None`` means the file is absent."""

    id: str
    category: str
    image: bytes | None
    image_format: str  # "jpg", "png" or "webp" (also the file extension)
    width: int  # of the encoded image; 0 if undecodable or missing
    height: int
    caption: bytes  # raw caption bytes (may be invalid UTF-8 on purpose)
    question: str
    answer: str
    truth_caption: str  # the caption as a valid str
    faults: tuple[str, ...] = ()
    dup_group: int = -1
    dup_kind: str = ""
    low_info: bool = False
    more_qa: tuple[tuple[str, str], ...] = ()  # follow-up turns after the first question


@dataclass
class CategoryCounts:
    records: int = 0
    originals: int = 0
    faulty: int = 0
    duplicates: int = 0
    low_info: int = 0
    redrawn: int = 0  # originals drawn again because they repeated an earlier picture


@dataclass
class KitSummary:
    """What :func:`generate_corpus` wrote, per category."""

    out: str
    fmt: str
    categories: dict[str, CategoryCounts] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(c.records for c in self.categories.values())

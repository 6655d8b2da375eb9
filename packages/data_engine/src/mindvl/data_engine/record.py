"""The record that flows through a build, between reading and mixing.

Readers turn raw corpora into :class:`Candidate` s, each image one :class:`ImageRecord`
(its encoded bytes and the features ``image_decode`` measured on it); operators look at
one candidate and either keep it (returning ``None``, possibly after annotating it) or
drop it (returning a reason). In Ray, candidates travel as rows (:meth:`to_row` /
:meth:`from_row`) holding the *encoded* image bytes, never decoded pixels, with one list
column per image field (``IMAGE_COLUMNS``). A dropped row keeps its identity and reason
(stage, op, reason) and loses its image bytes, so every input sample leaves the build as
exactly one kept or dropped row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

# Which text of a sample a text filter judges (see Candidate.texts).
TextPart = Literal["assistant", "user", "all"]

# Row columns, in a fixed order (Ray blocks and staging Parquet files use this schema).
ROW_COLUMNS = (
    "key",
    "source",
    "category",
    "raw_id",
    "images",
    "image_formats",
    "widths",
    "heights",
    "caption",
    "conversation",
    "phashes",
    "pixel_hashes",
    "signatures",
    "information",
    "blur",
    "quality",
    "meta",
    "drop_stage",
    "drop_op",
    "drop_reason",
    "read_order",
)
# per-image row column -> ImageRecord field; a column holds one value per image, or is
# empty when that field was not computed (a feature is computed for all images or none)
IMAGE_COLUMNS = {
    "images": "data",
    "image_formats": "format",
    "widths": "width",
    "heights": "height",
    "phashes": "phash",
    "pixel_hashes": "pixel_hash",
    "signatures": "signature",
    "information": "information",
    "blur": "blur",
}


@dataclass
class ImageRecord:
    """One image of a candidate: its encoded bytes and what ``image_decode`` measured."""

    data: bytes  # encoded, as read
    format: str | None = None  # detected from the bytes
    width: int | None = None
    height: int | None = None
    phash: str | None = None  # 16 hex chars
    pixel_hash: str | None = None  # xxh3-128 of the normalised pixels
    signature: str | None = None  # dedup/fingerprint.py, hex
    information: float | None = None  # low-information score
    blur: float | None = None  # Laplacian variance (None: the recipe did not ask)

    @property
    def decoded(self) -> bool:
        """Whether the features of ``image_decode`` are here."""
        return self.width is not None and self.pixel_hash is not None


@dataclass
class Candidate:
    key: str
    source: str
    category: str
    raw_id: str
    images: list[ImageRecord] = field(default_factory=list)  # bytes given are wrapped
    caption: str | None = None
    conversation: list[dict[str, str]] | None = None  # [{"role": ..., "content": ...}]
    quality: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    drop_stage: str | None = None
    drop_op: str | None = None
    drop_reason: str | None = None
    # where the reader met it: (unit index << 32) | position; the first occurrence of a
    # repeated key is the record (pipeline/duplicate_keys.py)
    read_order: int = -1

    def __post_init__(self) -> None:
        self.images = [im if isinstance(im, ImageRecord) else ImageRecord(im) for im in self.images]

    @property
    def dropped(self) -> bool:
        return self.drop_reason is not None

    def drop(self, stage: str, op: str, reason: str) -> None:
        """Mark as dropped; the images are released, identity and reason stay."""
        self.drop_stage, self.drop_op, self.drop_reason = stage, op, reason
        self.images = []

    def text(self) -> str:
        """All human-visible text: caption, or the conversation's contents joined."""
        if self.caption is not None:
            return self.caption
        return "\n".join(t.get("content", "") for t in self.conversation or [])

    def texts(self, part: TextPart = "all") -> list[str]:
        """The texts a filter judges, one per turn: ``assistant`` is the caption or the
        assistant turns (the sample's content), ``user`` the user turns (a caption sample has
        none), ``all`` the caption or every turn (system turns included)."""
        if self.caption is not None:
            return [] if part == "user" else [self.caption]
        turns = self.conversation or []
        return [t.get("content", "") for t in turns if part == "all" or t.get("role") == part]

    def to_row(self) -> dict[str, Any]:
        row = {c: self._column(c) if c in IMAGE_COLUMNS else getattr(self, c) for c in ROW_COLUMNS}
        row["conversation"] = (
            None if self.conversation is None else json.dumps(self.conversation, ensure_ascii=False)
        )
        row["meta"] = json.dumps(self.meta, sort_keys=True, ensure_ascii=False)
        return row

    def _column(self, column: str) -> list[Any]:
        values = [getattr(im, IMAGE_COLUMNS[column]) for im in self.images]
        return values if all(v is not None for v in values) else []

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Candidate:
        kw = {c: row.get(c) for c in ROW_COLUMNS if c not in IMAGE_COLUMNS}
        columns = {name: list(row.get(c) or []) for c, name in IMAGE_COLUMNS.items()}
        n = len(columns["data"])  # none in a dropped row (features it still lists are let go)
        kw["images"] = [
            ImageRecord(**{name: v[i] if len(v) == n else None for name, v in columns.items()})
            for i in range(n)
        ]
        for im in kw["images"]:
            im.data = bytes(im.data)
        conv = kw["conversation"]
        kw["conversation"] = json.loads(conv) if isinstance(conv, str) else conv
        meta = kw["meta"]
        kw["meta"] = json.loads(meta) if isinstance(meta, str) else (meta or {})
        kw["read_order"] = -1 if kw["read_order"] is None else int(kw["read_order"])
        return cls(**kw)

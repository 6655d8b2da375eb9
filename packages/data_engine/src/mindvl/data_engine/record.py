"""The record that flows through a build, between reading and mixing.

Readers turn raw corpora into :class:`Candidate` s; operators look at one candidate and
either keep it (returning ``None``, possibly after annotating it) or drop it (returning a
reason). In Ray, candidates travel as rows (:meth:`to_row` / :meth:`from_row`) holding the
*encoded* image bytes, never decoded pixels. A dropped row keeps its identity and reason
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


@dataclass
class Candidate:
    key: str
    source: str
    category: str
    raw_id: str
    images: list[bytes] = field(default_factory=list)
    caption: str | None = None
    conversation: list[dict[str, str]] | None = None  # [{"role": ..., "content": ...}]
    image_formats: list[str] = field(default_factory=list)  # detected from bytes
    widths: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    phashes: list[str] = field(default_factory=list)  # 16 hex chars per image
    pixel_hashes: list[str] = field(default_factory=list)  # xxh3-128 of normalised pixels
    signatures: list[str] = field(default_factory=list)  # dedup/fingerprint.py, hex
    information: list[float] = field(default_factory=list)  # low-information score per image
    blur: list[float] = field(default_factory=list)  # Laplacian variance (empty: not asked)
    quality: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    drop_stage: str | None = None
    drop_op: str | None = None
    drop_reason: str | None = None
    # where the reader met it: (unit index << 32) | position; the first occurrence of a
    # repeated key is the record (pipeline/duplicate_keys.py)
    read_order: int = -1

    @property
    def dropped(self) -> bool:
        return self.drop_reason is not None

    def drop(self, stage: str, op: str, reason: str) -> None:
        """Mark as dropped; image bytes are released, identity and reason stay."""
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
        row = {c: getattr(self, c) for c in ROW_COLUMNS}
        row["conversation"] = (
            None if self.conversation is None else json.dumps(self.conversation, ensure_ascii=False)
        )
        row["meta"] = json.dumps(self.meta, sort_keys=True, ensure_ascii=False)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Candidate:
        kw = {c: row.get(c) for c in ROW_COLUMNS}
        for c in (
            "images",
            "image_formats",
            "widths",
            "heights",
            "phashes",
            "pixel_hashes",
            "signatures",
            "information",
            "blur",
        ):
            kw[c] = list(kw[c]) if kw[c] is not None else []
        kw["images"] = [bytes(b) for b in kw["images"]]
        conv = kw["conversation"]
        kw["conversation"] = json.loads(conv) if isinstance(conv, str) else conv
        meta = kw["meta"]
        kw["meta"] = json.loads(meta) if isinstance(meta, str) else (meta or {})
        kw["read_order"] = -1 if kw["read_order"] is None else int(kw["read_order"])
        return cls(**kw)

"""The sample: what the data engine writes into a shard and the trainer reads back.

One sample is one WebDataset group of tar members sharing a key:

* ``{key}.json`` — the :class:`Sample` record below (UTF-8 JSON),
* ``{key}.img{i}.bin`` — image ``i``'s original encoded bytes, never a re-encode; the
  format (``jpg``, ``png``, ``webp``, ...) is the image's ``format`` in the JSON.

Every sample of a build has the same members: ``json`` and ``img0.bin`` ..
``img{K-1}.bin`` for the build's largest image count K, empty (0 bytes) past a sample's own
images. Readers that infer a schema from the first samples (HF ``datasets``) or decode by
extension (Ray Data's default decoder) then load any build unchanged.

Keys contain no dots (WebDataset splits member names at the first dot) and are unique
within a build. See docs/FORMAT.md for a real example.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from pydantic import Field, model_validator

from mindvl.common.config import StrictModel

IMAGE_PLACEHOLDER = "<image>"
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
IMAGE_FORMATS = ("jpg", "png", "webp", "gif", "bmp", "tiff")


def validate_key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise ValueError(f"invalid sample key {key!r}: use 1-200 of [A-Za-z0-9_-], no dots")
    return key


def make_key(source: str, raw_id: str) -> str:
    """A stable, dot-free key from a source name and the id a record has in its source.

    Readable prefix plus a short hash of the exact pair, so two raw ids that sanitise to the
    same text still get different keys.
    """
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{source}-{raw_id}").strip("-")[:80] or "s"
    digest = hashlib.sha256(f"{source}\x00{raw_id}".encode()).hexdigest()[:12]
    return f"{clean}_{digest}"


def detect_image_format(data: bytes) -> str | None:
    """The container format from magic bytes (not the file name), or None if unknown."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


IMAGE_MEMBER_EXT = "bin"  # no reader decodes it: bytes reach the user as written


def image_member(index: int, fmt: str) -> str:
    """Tar member extension of image ``index`` (``img0.bin``); the key and a dot precede it."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {fmt!r} (allowed: {', '.join(IMAGE_FORMATS)})")
    return f"img{index}.{IMAGE_MEMBER_EXT}"


def empty_image_members(n_images: int, width: int) -> list[str]:
    """Member extensions a sample with ``n_images`` writes empty so it has ``width`` slots."""
    return [f"img{i}.{IMAGE_MEMBER_EXT}" for i in range(n_images, width)]


class Turn(StrictModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ImageRef(StrictModel):
    """One image of a sample; its bytes live in the ``member`` of the sample's tar group."""

    member: str = Field(description="member extension, e.g. 'img0.bin'")
    format: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    sha256: str = Field(description="sha256 of the encoded bytes as stored")
    phash: str | None = Field(default=None, description="64-bit perceptual hash, 16 hex chars")
    tokens: int = Field(ge=0, description="LLM tokens under the shared native-resolution rule")


class TokenCounts(StrictModel):
    image: int = Field(ge=0)
    text: int = Field(ge=0)

    @property
    def total(self) -> int:
        return self.image + self.text


class CaptionProvenance(StrictModel):
    """Where a rewritten caption came from; the original text is always kept."""

    model_id: str
    weights_digest: str
    prompt_digest: str
    generation: dict[str, float | int | str | bool]
    policy: Literal["replace", "add_turn", "keep_original"]
    original: str | None = None
    accepted: bool = True
    reason: str | None = None


class Sample(StrictModel):
    """A training sample. Exactly one of ``conversation`` and ``caption`` is set.

    ``<image>`` placeholders in the conversation (or one implicit image before a caption)
    match ``images`` one to one, in order. A text-only sample has no images.
    """

    key: str
    source: str
    category: str
    conversation: list[Turn] | None = None
    caption: str | None = None
    images: list[ImageRef] = Field(default_factory=list)
    tokens: TokenCounts
    license: str | None = None
    origin_key: str | None = Field(default=None, description="set on upsampled repeats")
    caption_provenance: CaptionProvenance | None = None
    meta: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Sample:
        validate_key(self.key)
        if (self.conversation is None) == (self.caption is None):
            raise ValueError("exactly one of conversation and caption must be set")
        if self.conversation is not None:
            n = sum(t.content.count(IMAGE_PLACEHOLDER) for t in self.conversation)
            if n != len(self.images):
                raise ValueError(
                    f"{n} {IMAGE_PLACEHOLDER} placeholders but {len(self.images)} images"
                )
        elif len(self.images) > 1:
            raise ValueError("a caption sample has at most one image")
        members = [im.member for im in self.images]
        if len(set(members)) != len(members):
            raise ValueError("image members must be unique")
        return self

    def to_json_bytes(self) -> bytes:
        """Canonical bytes of the json member: sorted keys, no spaces, UTF-8."""
        import json

        return json.dumps(
            self.model_dump(mode="json", exclude_none=True),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")

    @classmethod
    def from_json_bytes(cls, data: bytes) -> Sample:
        return cls.model_validate_json(data)

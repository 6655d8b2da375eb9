"""A shard sample -> token ids and labels, through the chat rendering the data engine counts.

Each text piece of :func:`mindvl.common.chat.render_sample` is encoded on its own and each
image slot becomes ``<|image_pad|>`` x (the image's tokens under the manifest's rule), so a
sample's length is exactly ``tokens.image + tokens.text`` from its shard record. Labels
copy the ids of ``train`` pieces (assistant answers, a caption after its image) and are
-100 elsewhere; the model shifts them when it computes the next-token loss.

A sample longer than the token budget is cut in text after its last image (never inside
image tokens) when at least ``min_keep`` tokens remain, and dropped otherwise; both are
counted by reason so the run reports what it lost.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from mindvl.common.chat import render_sample
from mindvl.common.sample import Sample
from mindvl.common.text_tokens import TextTokenizer
from mindvl.common.tokens import ImageTokenRule, patch_grid

IGNORE = -100


@dataclass
class EncodedSample:
    key: str
    input_ids: list[int]
    labels: list[int]
    images: list[bytes]  # encoded bytes, decoded only when the pack is built
    image_sizes: list[tuple[int, int]]  # original (width, height)
    patches: int  # 14px ViT patches over all images
    shard: int
    offset: int

    @property
    def length(self) -> int:
        return len(self.input_ids)


@dataclass
class DropCounter:
    """Samples dropped or truncated, by reason (reported in metrics and the run log)."""

    dropped: Counter = field(default_factory=Counter)
    truncated: int = 0

    def state(self) -> dict:
        return {"dropped": dict(self.dropped), "truncated": self.truncated}

    def load(self, state: dict) -> None:
        self.dropped = Counter(state.get("dropped", {}))
        self.truncated = int(state.get("truncated", 0))


def encode_pieces(
    sample: Sample, tok: TextTokenizer, rule: ImageTokenRule
) -> tuple[list[int], list[int], int]:
    """(input_ids, labels, index just after the last image token)."""
    ids: list[int] = []
    labels: list[int] = []
    after_images = 0
    pieces = render_sample(sample.conversation, sample.caption, len(sample.images))
    for piece in pieces:
        if piece.image is not None:
            im = sample.images[piece.image]
            ids += [tok.image_pad_id] * rule.tokens(im.width, im.height)
            labels += [IGNORE] * rule.tokens(im.width, im.height)
            after_images = len(ids)
            continue
        piece_ids = tok.encode(piece.text or "")
        ids += piece_ids
        labels += piece_ids if piece.train else [IGNORE] * len(piece_ids)
    return ids, labels, after_images


def image_patches(sample: Sample, rule: ImageTokenRule) -> int:
    total = 0
    for im in sample.images:
        t, h, w = patch_grid(im.width, im.height, rule.min_pixels, rule.max_pixels)
        total += t * h * w
    return total


def encode_sample(
    raw_members: dict[str, bytes],
    shard: int,
    offset: int,
    tok: TextTokenizer,
    rule: ImageTokenRule,
    max_tokens: int,
    max_patches: int,
    drops: DropCounter,
    min_keep: int = 1,
) -> EncodedSample | None:
    """Encode one tar group, or None (counted in ``drops``) when it cannot be trained on."""
    if "json" not in raw_members:
        drops.dropped["no json member"] += 1
        return None
    sample = Sample.from_json_bytes(raw_members["json"])
    missing = [im.member for im in sample.images if im.member not in raw_members]
    if missing:
        drops.dropped["missing image member"] += 1
        return None
    patches = image_patches(sample, rule)
    if patches > max_patches:
        drops.dropped["images exceed the ViT patch budget"] += 1
        return None
    ids, labels, after_images = encode_pieces(sample, tok, rule)
    if len(ids) > max_tokens:
        if after_images + min_keep > max_tokens:
            drops.dropped["image tokens exceed seq_len"] += 1
            return None
        ids, labels = ids[:max_tokens], labels[:max_tokens]
        drops.truncated += 1
    if all(x == IGNORE for x in labels):
        drops.dropped["no loss tokens"] += 1
        return None
    return EncodedSample(
        key=sample.key,
        input_ids=ids,
        labels=labels,
        images=[raw_members[im.member] for im in sample.images],
        image_sizes=[(im.width, im.height) for im in sample.images],
        patches=patches,
        shard=shard,
        offset=offset,
    )

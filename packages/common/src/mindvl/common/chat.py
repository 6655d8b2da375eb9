"""The chat rendering shared by token accounting (data engine) and training (trainer).

A sample becomes a list of :class:`Piece` s: text pieces (tokenised piece by piece, so a
count is the sum of the pieces' counts) and image slots (``<|image_pad|>`` repeated as many
times as the image has tokens). ``train`` marks the pieces whose tokens carry loss:
assistant answers with their end marker for conversations, and the caption after the image
for caption samples.

Conversation::

    <|im_start|>user\\n<|vision_start|>[image]<|vision_end|>\\nWhat colour?<|im_end|>\\n
    <|im_start|>assistant\\nred<|im_end|>\\n

Caption::

    <|vision_start|>[image]<|vision_end|>A red circle.<|endoftext|>
"""

from __future__ import annotations

from dataclasses import dataclass

from mindvl.common.sample import IMAGE_PLACEHOLDER, Turn

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
IMAGE_PAD = "<|image_pad|>"
END_OF_TEXT = "<|endoftext|>"
PAD = "<|pad|>"
SPECIAL_TOKENS = (END_OF_TEXT, PAD, IM_START, IM_END, VISION_START, VISION_END, IMAGE_PAD)


@dataclass(frozen=True)
class Piece:
    """A text piece (``text`` set) or an image slot (``image`` = index into the sample's images)."""

    text: str | None = None
    image: int | None = None
    train: bool = False


def render_conversation(turns: list[Turn]) -> list[Piece]:
    pieces: list[Piece] = []
    image_index = 0
    for turn in turns:
        train = turn.role == "assistant"
        pieces.append(Piece(text=f"{IM_START}{turn.role}\n"))
        parts = turn.content.split(IMAGE_PLACEHOLDER)
        for i, part in enumerate(parts):
            if i > 0:
                pieces.append(Piece(text=VISION_START))
                pieces.append(Piece(image=image_index))
                pieces.append(Piece(text=VISION_END))
                image_index += 1
            if part:
                pieces.append(Piece(text=part, train=train))
        pieces.append(Piece(text=IM_END, train=train))
        pieces.append(Piece(text="\n"))
    return pieces


def render_caption(caption: str, has_image: bool) -> list[Piece]:
    pieces: list[Piece] = []
    if has_image:
        pieces += [Piece(text=VISION_START), Piece(image=0), Piece(text=VISION_END)]
    if caption:
        pieces.append(Piece(text=caption, train=True))
    pieces.append(Piece(text=END_OF_TEXT, train=True))
    return pieces


def render_sample(
    conversation: list[Turn] | None, caption: str | None, n_images: int
) -> list[Piece]:
    """Pieces of a sample given its conversation or caption (exactly one is set)."""
    if conversation is not None:
        return render_conversation(conversation)
    return render_caption(caption or "", n_images > 0)

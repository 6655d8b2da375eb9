"""Text tokenisation through a local Hugging Face tokenizer, as both halves must count it."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from mindvl.common.chat import IMAGE_PAD, SPECIAL_TOKENS, Piece, render_sample
from mindvl.common.errors import UserError
from mindvl.common.sample import Turn
from mindvl.common.tokens import ImageTokenRule, SampleTokens


class TextTokenizer:
    """Wraps a local HF tokenizer; pieces are encoded one by one without added specials."""

    def __init__(self, tokenizer) -> None:
        self.hf = tokenizer
        missing = [
            t
            for t in SPECIAL_TOKENS
            if tokenizer.convert_tokens_to_ids(t) in (None, tokenizer.unk_token_id)
        ]
        if missing:
            raise UserError(
                f"tokenizer lacks the special tokens {missing}; train one with `mindvl tokenizer train`"
            )
        self.image_pad_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
        self.pad_id = tokenizer.convert_tokens_to_ids("<|pad|>")

    @classmethod
    def from_path(cls, path: str | Path) -> TextTokenizer:
        return _load(str(path))

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False)

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def count_pieces(self, pieces: list[Piece]) -> int:
        return sum(self.count(p.text) for p in pieces if p.text is not None)

    def sample_tokens(
        self,
        conversation: list[Turn] | None,
        caption: str | None,
        image_sizes: list[tuple[int, int]],
        rule: ImageTokenRule,
    ) -> SampleTokens:
        """Image and text tokens of a sample, exactly as the trainer will lay them out."""
        pieces = render_sample(conversation, caption, len(image_sizes))
        image = sum(rule.tokens(w, h) for w, h in image_sizes)
        return SampleTokens(image=image, text=self.count_pieces(pieces))


@lru_cache(maxsize=8)
def _load(path: str) -> TextTokenizer:
    p = Path(path)
    if not p.exists():
        raise UserError(f"tokenizer not found: {path}")
    from transformers import PreTrainedTokenizerFast

    if p.is_file():
        hf = PreTrainedTokenizerFast(tokenizer_file=str(p))
    else:
        try:
            hf = PreTrainedTokenizerFast.from_pretrained(str(p), local_files_only=True)
        except (OSError, ValueError) as err:
            raise UserError(
                f"cannot load tokenizer from {path}: {' '.join(str(err).split())[:200]}"
            ) from None
    return TextTokenizer(hf)

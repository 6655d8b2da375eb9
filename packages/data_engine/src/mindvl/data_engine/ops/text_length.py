"""Drop samples whose text is too short or too long, in characters and optionally tokens.

The text is the judged turns joined by newlines, stripped. Unlike the other text
operators, ``judge`` defaults to ``all`` (the caption, or every turn): token bounds count
the contents with the recipe's tokenizer (no chat template), so they bound what a sample
adds to the trainer's sequence up to a small constant.
"""

from __future__ import annotations

from pydantic import Field

from mindvl.common.config import StrictModel
from mindvl.common.errors import UserError
from mindvl.data_engine.ops.base import JudgedTextParams, OpContext, Operator, judged_text
from mindvl.data_engine.record import Candidate, TextPart


class TextLengthParams(JudgedTextParams):
    judge: TextPart = Field(default="all", description="default: every turn (sequence length)")
    min_chars: int = Field(default=1, ge=0)
    max_chars: int | None = Field(default=None, ge=1)
    min_tokens: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)


class TextLength(Operator):
    """Reasons ``too_short`` / ``too_long``."""

    name = "text_length"
    Params = TextLengthParams

    def __init__(self, params: StrictModel | None = None, context: OpContext | None = None) -> None:
        super().__init__(params, context)
        p = self.params
        self.counts_tokens = p.min_tokens is not None or p.max_tokens is not None
        if self.counts_tokens and not self.context.tokenizer_path:
            raise UserError("text_length: min_tokens/max_tokens need the recipe's `tokenizer`")
        self._tokenizer = None

    def tokens(self, text: str) -> int:
        if self._tokenizer is None:
            from mindvl.common.text_tokens import TextTokenizer

            self._tokenizer = TextTokenizer.from_path(self.context.tokenizer_path)
        return self._tokenizer.count(text)

    def __call__(self, candidate: Candidate) -> str | None:
        p = self.params
        text = judged_text(candidate, p.judge).strip()
        if len(text) < p.min_chars:
            return "too_short"
        if p.max_chars is not None and len(text) > p.max_chars:
            return "too_long"
        if self.counts_tokens:
            n = self.tokens(text)
            if p.min_tokens is not None and n < p.min_tokens:
                return "too_short"
            if p.max_tokens is not None and n > p.max_tokens:
                return "too_long"
        return None

"""Drop repetitive or boilerplate text: spam captions, scraped templates, stuck generations.

Three checks, cheapest first: a boilerplate phrase (case-insensitive substring) ->
``boilerplate``; the share of duplicate lines among non-empty lines above
``max_duplicate_line_ratio`` -> ``repetitive``; the share of word n-grams that repeat an
earlier n-gram above ``max_ngram_ratio`` -> ``repetitive``. The n-gram check needs at least
``min_words`` words: on a five-word caption one repeat is not a pattern. The text is the
judged turns (``judge``, default the caption / assistant turns) joined by newlines, so the
same answer given in two turns counts as a duplicate line.
"""

from __future__ import annotations

import re

from pydantic import Field

from mindvl.data_engine.ops.base import JudgedTextParams, Operator, judged_text
from mindvl.data_engine.record import Candidate

DEFAULT_BOILERPLATE = [
    "lorem ipsum",
    "click here",
    "all rights reserved",
    "image may contain",
    "no description available",
    "stock photo",
    "royalty free",
    "free shipping",
    "buy now",
]
WORD = re.compile(r"\w+", re.UNICODE)


class RepetitionParams(JudgedTextParams):
    ngram: int = Field(default=3, ge=1, le=10)
    max_ngram_ratio: float = Field(default=0.3, ge=0.0, le=1.0)
    max_duplicate_line_ratio: float = Field(default=0.3, ge=0.0, le=1.0)
    min_words: int = Field(default=8, ge=1)
    boilerplate: list[str] = Field(default_factory=lambda: list(DEFAULT_BOILERPLATE))


def duplicate_ratio(items: list) -> float:
    """Share of items equal to an earlier item (0 for no repeats, -> 1 for one item repeated)."""
    return 0.0 if not items else 1.0 - len(set(items)) / len(items)


class Repetition(Operator):
    """Reasons ``boilerplate`` / ``repetitive``."""

    name = "repetition"
    Params = RepetitionParams

    def __call__(self, candidate: Candidate) -> str | None:
        p = self.params
        text = judged_text(candidate, p.judge)
        lowered = text.lower()
        if any(phrase.lower() in lowered for phrase in p.boilerplate):
            return "boilerplate"
        lines = [line.strip().lower() for line in text.splitlines() if line.strip()]
        if len(lines) > 1 and duplicate_ratio(lines) > p.max_duplicate_line_ratio:
            return "repetitive"
        words = WORD.findall(lowered)
        if len(words) >= max(p.min_words, p.ngram):
            grams = [tuple(words[i : i + p.ngram]) for i in range(len(words) - p.ngram + 1)]
            if duplicate_ratio(grams) > p.max_ngram_ratio:
                return "repetitive"
        return None

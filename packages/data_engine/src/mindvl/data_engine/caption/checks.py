"""Acceptance checks for a generated caption; a failed check keeps the original text.

Cheap and deterministic, so they run on every read (cached generations included): the
same cache can serve recipes with different checks. Reasons are short fixed strings that
the funnel counts: ``empty``, ``too_short``, ``too_long``, ``repetition``,
``language:<reason>``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mindvl.common.recipe import CaptionChecks
from mindvl.data_engine.record import Candidate

log = logging.getLogger(__name__)

LANGUAGE_OP_MODULE = "mindvl.data_engine.ops.language_id"


def repetition(text: str, n: int = 3) -> float:
    """Share of repeated n-grams: 0 for all-distinct text, near 1 for "a a a a a a".

    Words are the units when there are enough of them, characters otherwise (captions in
    languages written without spaces, or a model stuck on one long token run).
    """
    words = text.split()
    units: list[str] = words if len(words) >= 2 * n else list(text.replace(" ", ""))
    if len(units) < n + 1:
        return 0.0
    grams = [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)


def language_checker(languages: list[str]) -> Callable[[str], str | None] | None:
    """A text -> reason function backed by the data engine's ``language_id`` operator.

    Imported lazily; where that operator is not installed the check is skipped, with a
    logged note, rather than failing the build.
    """
    if not languages:
        return None
    try:
        from mindvl.data_engine.ops.language_id import LanguageId
    except ImportError as err:
        log.warning(
            "caption language check skipped: %s is not available (%s)", LANGUAGE_OP_MODULE, err
        )
        return None
    op = LanguageId(LanguageId.Params.model_validate({"languages": list(languages)}))

    def check(text: str) -> str | None:
        probe = Candidate(key="caption", source="caption", category="", raw_id="", caption=text)
        reason = op(probe)
        if reason is None or reason.startswith("language:"):
            return reason
        return f"language:{reason}"

    return check


class CaptionChecker:
    """All checks of a recipe's ``caption.checks``, built once per actor."""

    def __init__(self, checks: CaptionChecks) -> None:
        self.checks = checks
        self.language = language_checker(checks.languages)

    def __call__(self, text: str) -> str | None:
        """None if ``text`` is acceptable, else the first failing check's reason."""
        c = self.checks
        stripped = text.strip()
        if not stripped:
            return "empty"
        if len(stripped) < c.min_chars:
            return "too_short"
        if len(stripped) > c.max_chars:
            return "too_long"
        if repetition(stripped) > c.max_repetition:
            return "repetition"
        if self.language is not None:
            return self.language(stripped)
        return None

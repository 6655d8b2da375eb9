"""Acceptance checks for a generated caption; a failed check keeps the original text.

Cheap and deterministic, so they run on every read (cached generations included): the
same cache can serve recipes with different checks. Reasons are short fixed strings that
the funnel counts: ``empty``, ``too_short``, ``too_long``, ``repetition``,
``language:<reason>``.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Callable

from mindvl.common.recipe import CaptionChecks

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
    """A text -> reason function backed by the ``language_id`` operator, or None.

    The operator is imported lazily and only used if present; its Params are filled by
    giving ``languages`` to its first list-of-strings field, so this module does not pin
    that operator's parameter names.
    """
    if not languages:
        return None
    try:
        import importlib

        from mindvl.data_engine.ops.base import Operator
        from mindvl.data_engine.record import Candidate

        module = importlib.import_module(LANGUAGE_OP_MODULE)
    except ImportError:
        log.warning("caption language check skipped: %s is not available", LANGUAGE_OP_MODULE)
        return None
    classes = [
        c
        for c in vars(module).values()
        if isinstance(c, type) and issubclass(c, Operator) and c is not Operator
    ]
    op = None
    for cls in classes:
        field = next(
            (
                name
                for name, f in cls.Params.model_fields.items()
                if typing.get_origin(f.annotation) is list
            ),
            None,
        )
        if field is None:
            continue
        try:
            op = cls(cls.Params.model_validate({field: list(languages)}))
            break
        except Exception as err:  # an operator whose params we cannot fill
            log.warning("caption language check: cannot configure %s: %s", cls.__name__, err)
    if op is None:
        log.warning("caption language check skipped: no usable operator in %s", LANGUAGE_OP_MODULE)
        return None

    def check(text: str) -> str | None:
        reason = op(
            Candidate(key="caption", source="caption", category="", raw_id="", caption=text)
        )
        return None if reason is None else f"language:{reason}"

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

"""Text as every reader hands it on: Unicode NFC, line ends as ``\\n``, no control characters.

NUL and the other C0/C1 control characters (and DEL) have no place in a caption or a
conversation; tab and newline stay, ``\\r\\n`` and a lone ``\\r`` become ``\\n``. What a
source does with the rest is its ``options.control_chars``: ``remove`` (the default:
delete them, keep the sample) or ``drop`` (drop the sample at read with reason
``control_characters``). A conversation whose assistant turn is empty after this is
dropped at read (``empty_answer``) in every format: there is nothing to learn from it.
"""

from __future__ import annotations

import re
import unicodedata

from mindvl.data_engine.record import Candidate

POLICIES = ("remove", "drop")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: str) -> tuple[str, bool]:
    """(normalised text, whether it held control characters other than line ends)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    cleaned = _CONTROL.sub("", text)
    return unicodedata.normalize("NFC", cleaned), cleaned != text


def normalise_candidate(c: Candidate, policy: str, op: str) -> Candidate:
    """Normalise ``c``'s caption and turns in place, or drop it (see the module doc)."""
    if c.dropped:
        return c
    found = False
    if c.caption is not None:
        c.caption, found = clean(c.caption)
    for turn in c.conversation or []:
        turn["content"], had = clean(turn["content"])
        found |= had
    if found and policy == "drop":
        c.drop("read", op, "control_characters")
    elif any(t["role"] == "assistant" and not t["content"].strip() for t in c.conversation or []):
        c.drop("read", op, "empty_answer")
    return c

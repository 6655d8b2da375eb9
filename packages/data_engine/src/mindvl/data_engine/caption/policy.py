"""Where an accepted caption goes in a candidate, per category policy.

* ``replace``: a caption sample's caption becomes the new text; in a conversation the
  LAST assistant turn's text is replaced (earlier turns, and every ``<image>``
  placeholder, stay). A conversation without an assistant turn gets the new caption as an
  added user/assistant pair instead, since there is nothing to replace (likewise when that
  answer holds an ``<image>`` placeholder, which must not be lost).
* ``add_turn``: a user turn holding the prompt and an assistant turn holding the new
  caption are appended. A caption sample becomes a conversation (a sample carries exactly
  one of the two): ``<image>`` -> original caption, then prompt -> new caption; without an
  original caption it is ``<image>\\nprompt`` -> new caption.
* ``keep_original``: the training text is never changed; an accepted caption is kept next
  to it in ``meta["caption_generated"]`` (for inspection or a later recipe).

A rejected or failed caption changes nothing under any policy. The original text is
always recorded in the provenance (:func:`original_text`).
"""

from __future__ import annotations

from mindvl.common.sample import IMAGE_PLACEHOLDER
from mindvl.data_engine.record import Candidate

GENERATED_META = "caption_generated"


def _last_assistant(conversation: list[dict[str, str]]) -> int | None:
    for i in range(len(conversation) - 1, -1, -1):
        if conversation[i].get("role") == "assistant":
            return i
    return None


def original_text(candidate: Candidate) -> str | None:
    """The text a new caption stands in for: the caption, or the last assistant answer."""
    if candidate.conversation is None:
        return candidate.caption
    i = _last_assistant(candidate.conversation)
    return None if i is None else candidate.conversation[i].get("content")


def _append_pair(candidate: Candidate, prompt: str, text: str) -> None:
    if candidate.conversation is None:
        original = candidate.caption
        if original:
            turns = [
                {"role": "user", "content": IMAGE_PLACEHOLDER},
                {"role": "assistant", "content": original},
                {"role": "user", "content": prompt},
            ]
        else:
            turns = [{"role": "user", "content": f"{IMAGE_PLACEHOLDER}\n{prompt}"}]
        candidate.conversation = [*turns, {"role": "assistant", "content": text}]
        candidate.caption = None
        return
    candidate.conversation = [
        *candidate.conversation,
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": text},
    ]


def apply_caption(candidate: Candidate, policy: str, prompt: str, text: str) -> None:
    """Put an accepted ``text`` into ``candidate`` according to ``policy``."""
    if policy == "keep_original":
        candidate.meta[GENERATED_META] = text
    elif policy == "add_turn":
        _append_pair(candidate, prompt, text)
    elif policy == "replace":
        if candidate.conversation is None:
            candidate.caption = text
            return
        i = _last_assistant(candidate.conversation)
        if i is None or IMAGE_PLACEHOLDER in candidate.conversation[i].get("content", ""):
            _append_pair(candidate, prompt, text)
            return
        turns = [dict(t) for t in candidate.conversation]
        turns[i]["content"] = text
        candidate.conversation = turns
    else:
        raise ValueError(f"unknown caption policy {policy!r}")

"""Text normalisation at read: control characters, line ends, NFC, empty answers."""

from __future__ import annotations

from mindvl.data_engine.readers.text_clean import clean, normalise_candidate
from mindvl.data_engine.record import Candidate


def _cand(caption=None, conversation=None) -> Candidate:
    return Candidate("k", "s", "caption", "r", caption=caption, conversation=conversation)


def test_clean_removes_controls_keeps_tab_newline_and_composes():
    assert clean("a\x00b\tc\r\nd\re\x1b\x7f\x85\x9ff") == ("ab\tc\nd\nef", True)
    assert clean("cafe\u0301") == ("caf\u00e9", False)
    assert clean("plain\ntext") == ("plain\ntext", False)


def test_policy_remove_keeps_and_drop_drops():
    kept = normalise_candidate(_cand(caption="a\x00b"), "remove", "llava")
    assert not kept.dropped and kept.caption == "ab"
    dropped = normalise_candidate(_cand(caption="a\x00b"), "drop", "llava")
    assert (dropped.drop_stage, dropped.drop_op, dropped.drop_reason) == (
        "read", "llava", "control_characters",
    )  # fmt: skip


def test_empty_assistant_answer_is_dropped_after_cleaning():
    turns = [
        {"role": "user", "content": "<image>\nWhat?"},
        {"role": "assistant", "content": "\x00 \n"},
    ]
    c = normalise_candidate(_cand(conversation=turns), "remove", "parquet")
    assert c.drop_reason == "empty_answer" and c.drop_op == "parquet"
    ok = [{"role": "user", "content": "<image>\nWhat?"}, {"role": "assistant", "content": "A cat."}]
    assert not normalise_candidate(_cand(conversation=ok), "remove", "parquet").dropped

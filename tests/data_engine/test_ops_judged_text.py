"""Text filters judge the sample's content (caption / assistant turns), not its prompt."""

from __future__ import annotations

import pytest

from mindvl.common.errors import ConfigError
from mindvl.data_engine.ops.registry import build_operator
from mindvl.data_engine.record import Candidate

QUESTION = "<image>\nDescribe the image."


def chat(*turns: tuple[str, str]) -> Candidate:
    conversation = [{"role": role, "content": content} for role, content in turns]
    return Candidate(key="k", source="s", category="c", raw_id="r", conversation=conversation)


def caption(text: str) -> Candidate:
    return Candidate(key="k", source="s", category="c", raw_id="r", caption=text)


def test_texts_by_part() -> None:
    c = chat(("system", "Be brief."), ("user", "Q1"), ("assistant", "A1"), ("user", "Q2"))
    assert c.texts("assistant") == ["A1"]
    assert c.texts("user") == ["Q1", "Q2"]
    assert c.texts("all") == ["Be brief.", "Q1", "A1", "Q2"]
    assert "\n".join(c.texts("all")) == c.text()
    assert (
        caption("A red car").texts("assistant")
        == ["A red car"]
        == caption("A red car").texts("all")
    )
    assert caption("A red car").texts("user") == []


def test_english_question_does_not_decide_a_greek_caption() -> None:
    en = build_operator("language_id", {"languages": ["en"]}, "r.yaml", 0)
    greek = chat(("user", QUESTION), ("assistant", "Το γράμμα k."))
    assert en(greek) == "language:el"
    assert en(chat(("user", "请描述这张图片。"), ("assistant", "A red car parked outside"))) is None
    asks_english = build_operator("language_id", {"judge": "user"}, "r.yaml", 0)
    assert asks_english(greek) is None  # the question is English; the answer is not judged


def test_turns_are_judged_one_by_one() -> None:
    en = build_operator("language_id", {}, "r.yaml", 0)
    long_en = "The photo shows a wooden table with two cups of coffee and an open book on it."
    # a one-word foreign reply is under a tenth of the judged letters: the sample keeps
    assert (
        en(chat(("user", QUESTION), ("assistant", long_en), ("user", "Ok?"), ("assistant", "Sí")))
        is None
    )
    mixed = chat(
        ("user", QUESTION),
        ("assistant", long_en),
        ("assistant", "Ein roter Apfel liegt auf dem Tisch neben der Tasse"),
    )
    assert en(mixed) == "language:de"  # the largest failing turn names the reason
    lenient = build_operator("language_id", {"min_pass_share": 0.5}, "r.yaml", 0)
    assert lenient(mixed) is None
    assert en(chat(("user", QUESTION), ("assistant", "42"))) is None  # no words: not judged


def test_repetition_and_length_judge_their_part() -> None:
    question = "Describe the image in detail please, describe it in detail."
    c = chat(
        ("user", question),
        ("assistant", "A dog runs on the beach."),
        ("user", question),
        ("assistant", "A cat sleeps on a red sofa."),
        ("user", question),
        ("assistant", "Two boats sail past the old lighthouse."),
    )
    assert build_operator("repetition", {}, "r.yaml", 0)(c) is None
    assert build_operator("repetition", {"judge": "all"}, "r.yaml", 0)(c) == "repetitive"
    assert build_operator("repetition", {"judge": "user"}, "r.yaml", 0)(c) == "repetitive"
    assert build_operator("text_length", {"max_chars": 100}, "r.yaml", 0)(c) == "too_long"
    assert (
        build_operator("text_length", {"max_chars": 100, "judge": "assistant"}, "r.yaml", 0)(c)
        is None
    )


def test_judge_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"operators\[0\]\.params\.judge"):
        build_operator("language_id", {"judge": "question"}, "r.yaml", 0)

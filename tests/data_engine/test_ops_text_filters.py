"""text_length and repetition on inline texts; token bounds with a tokenizer trained here."""

from __future__ import annotations

import pytest

from mindvl.common.errors import ConfigError, UserError
from mindvl.common.tokenizer_train import train_bpe_tokenizer
from mindvl.data_engine.ops.base import OpContext
from mindvl.data_engine.ops.registry import build_operator
from mindvl.data_engine.record import Candidate


def cand(caption: str | None = None, conversation: list[dict] | None = None) -> Candidate:
    return Candidate(
        key="k", source="s", category="c", raw_id="r", caption=caption, conversation=conversation
    )


def test_text_length_chars() -> None:
    op = build_operator("text_length", {"min_chars": 5, "max_chars": 20}, "r.yaml", 0)
    assert op(cand("   ")) == "too_short"
    assert op(cand("  abc  ")) == "too_short"
    assert op(cand("a red apple")) is None
    assert op(cand("x" * 21)) == "too_long"
    conv = [{"role": "user", "content": "what is it?"}, {"role": "assistant", "content": "a cat"}]
    assert op(cand(conversation=conv)) is None


def test_text_length_tokens(tmp_path) -> None:
    texts = ["a red apple on a wooden table", "two dogs play on the beach"] * 50
    tok = train_bpe_tokenizer(texts, 300, tmp_path / "tok")
    ctx = OpContext(tokenizer_path=str(tok))
    op = build_operator("text_length", {"min_tokens": 5, "max_tokens": 12}, "r.yaml", 0, ctx)
    assert op(cand("apple")) == "too_short"  # 5 chars, 3 tokens
    assert op(cand("a red apple on a wooden table")) is None  # 7 tokens
    assert op(cand(" ".join(["zebra quantum"] * 10))) == "too_long"
    with pytest.raises(UserError, match="need the recipe's `tokenizer`"):
        build_operator("text_length", {"max_tokens": 5}, "r.yaml", 0)


def test_repetition() -> None:
    op = build_operator("repetition", {}, "r.yaml", 0)
    assert op(cand("A brown dog runs across a green field chasing a red ball.")) is None
    assert op(cand("Nice nice nice nice nice nice nice nice nice")) == "repetitive"
    spam = "best price best price best price best price buy cheap"
    assert op(cand(spam)) == "repetitive"
    assert op(cand("line one\nline one\nline one\nline two")) == "repetitive"
    assert op(cand("Beautiful sunset. Stock photo, all rights reserved.")) == "boilerplate"
    assert op(cand("dog dog")) is None  # too short to call a pattern
    custom = build_operator("repetition", {"boilerplate": ["[AD]"]}, "r.yaml", 0)
    assert custom(cand("[ad] great shoes")) == "boilerplate"
    assert custom(cand("stock photo of shoes")) is None


@pytest.mark.parametrize(
    ("name", "params", "field"),
    [
        ("text_length", {"min_chars": -1}, "min_chars"),
        ("text_length", {"max_char": 3}, "max_char"),
        ("repetition", {"ngram": 0}, "ngram"),
        ("repetition", {"boilerplate": "spam"}, "boilerplate"),
        ("language_id", {"min_confidence": 2}, "min_confidence"),
        ("language_id", {"languages": []}, "languages"),
    ],
)
def test_bad_text_params_name_the_field(name: str, params: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=rf"r\.yaml: operators\[1\]\.params\.{field}"):
        build_operator(name, params, "r.yaml", 1)

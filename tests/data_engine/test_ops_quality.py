"""train-quality + the quality operator: a classifier trained here separates fluent captions
from spammy ones on held-out examples, and ships small."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from mindvl.common.errors import ConfigError, UserError
from mindvl.data_engine.cli import data
from mindvl.data_engine.ops.registry import build_operator
from mindvl.data_engine.ops.train_quality import train_quality_model
from mindvl.data_engine.record import Candidate

SUBJECTS = [
    "dog",
    "cat",
    "woman",
    "man",
    "child",
    "bird",
    "horse",
    "car",
    "bicycle",
    "boat",
    "house",
    "tree",
    "cup",
    "book",
    "lamp",
]
ADJECTIVES = [
    "red",
    "small",
    "old",
    "wooden",
    "bright",
    "quiet",
    "tall",
    "green",
    "blue",
    "white",
    "yellow",
    "black",
]
VERBS = ["sits on", "stands near", "runs across", "rests beside", "waits under", "looks at"]
PLACES = ["the beach", "a wooden table", "the old bridge", "a green field", "a busy street"]
SPAM = "best price|buy now|free shipping|click here|limited offer|hot sale|cheap|discount|wholesale"


def examples(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 2:
            text = f"A {rng.choice(ADJECTIVES)} {rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(PLACES)}."
            out.append({"text": text, "label": "good"})
        else:
            parts = [rng.choice(SPAM.split("|")) for _ in range(rng.randint(2, 6))]
            parts += [rng.choice(SUBJECTS)] * rng.randint(1, 2)
            rng.shuffle(parts)
            text = " ".join(parts) + " " + "!" * rng.randint(0, 3)
            out.append({"text": text.upper() if rng.random() < 0.3 else text, "label": "bad"})
    return out


def write_jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quality")
    write_jsonl(tmp / "train.jsonl", examples(300, seed=1))
    result = train_quality_model(tmp / "train.jsonl", tmp / "q.ftz", quantize=True)
    assert result.examples == 300 and result.labels == {"good": 150, "bad": 150}
    assert result.size_bytes < 200 * 1024  # quantised with bucket=10000 (~107 KiB)
    return result.path


def test_quality_op_on_held_out_examples(model) -> None:
    op = build_operator("quality", {"model": str(model), "min_score": 0.5}, "r.yaml", 0)
    held = examples(200, seed=2)
    correct = 0
    for row in held:
        c = Candidate(key="k", source="s", category="c", raw_id="r", caption=row["text"])
        reason = op(c)
        assert c.quality is not None and 0.0 <= c.quality <= 1.0
        assert reason in (None, "low_quality")
        correct += (reason is None) == (row["label"] == "good")
    assert correct / len(held) >= 0.9
    strict = build_operator("quality", {"model": str(model), "min_score": 1.0}, "r.yaml", 0)
    c = Candidate(key="k", source="s", category="c", raw_id="r", caption=held[1]["text"])
    assert strict(c) == "low_quality" or c.quality == 1.0


def test_cli_fasttext_format_and_small_model(tmp_path) -> None:
    rows = examples(120, seed=3)
    train = tmp_path / "train.txt"
    train.write_text("".join(f"__label__{r['label']} {r['text']}\n" for r in rows))
    write_jsonl(tmp_path / "valid.jsonl", examples(60, seed=4))
    res = CliRunner().invoke(
        data,
        ["train-quality", "--train", str(train), "--out", str(tmp_path / "m.ftz"),
         "--valid", str(tmp_path / "valid.jsonl"), "--no-quantize", "--bucket", "5000"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "from 120 examples (good 60, bad 60); held-out accuracy" in res.output
    assert (tmp_path / "m.ftz").stat().st_size < 1024 * 1024


def test_bad_inputs_are_one_line_errors(tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a cat", "label": "good"}\n{"text": "x", "label": "meh"}\n')
    with pytest.raises(UserError, match=r"bad\.jsonl:2: label 'meh'"):
        train_quality_model(bad, tmp_path / "m.ftz")
    with pytest.raises(UserError, match="model not found"):
        build_operator("quality", {"model": str(tmp_path / "none.ftz")}, "r.yaml", 0)
    with pytest.raises(ConfigError, match=r"operators\[2\]\.params\.model: required field"):
        build_operator("quality", {}, "r.yaml", 2)
    with pytest.raises(ConfigError, match=r"operators\[2\]\.params\.min_score"):
        build_operator("quality", {"model": "m.ftz", "min_score": 1.5}, "r.yaml", 2)


def test_a_nan_training_run_is_repeated_with_the_next_seed(tmp_path, monkeypatch) -> None:
    import fasttext

    real = fasttext.train_supervised
    seeds: list[int] = []

    def flaky(**kw):
        seeds.append(kw["seed"])
        if len(seeds) < 3:
            raise RuntimeError("Encountered NaN.")
        return real(**kw)

    monkeypatch.setattr(fasttext, "train_supervised", flaky)
    write_jsonl(tmp_path / "train.jsonl", examples(60, seed=2))
    result = train_quality_model(tmp_path / "train.jsonl", tmp_path / "q.ftz", seed=5)
    assert seeds == [5, 6, 7] and result.path.exists()

    def always(**kw):
        raise RuntimeError("Encountered NaN.")

    monkeypatch.setattr(fasttext, "train_supervised", always)
    with pytest.raises(UserError, match="training failed 3 times .*lower --lr"):
        train_quality_model(tmp_path / "train.jsonl", tmp_path / "q2.ftz")


def test_quality_scores_the_answer_not_the_question(model) -> None:
    op = build_operator("quality", {"model": str(model)}, "r.yaml", 0)
    spam = "BUY NOW cheap discount best price free shipping click here !!!"
    good = "A white dog sits on the old bridge."
    c = Candidate(
        key="k",
        source="s",
        category="c",
        raw_id="r",
        conversation=[{"role": "user", "content": spam}, {"role": "assistant", "content": good}],
    )
    assert op(c) is None and c.quality >= 0.5
    by_user = build_operator("quality", {"model": str(model), "judge": "user"}, "r.yaml", 0)
    assert by_user(c) == "low_quality"
    caption = Candidate(key="k", source="s", category="c", raw_id="r", caption=good)
    assert by_user(caption) is None and caption.quality is None  # no user turn: unscored

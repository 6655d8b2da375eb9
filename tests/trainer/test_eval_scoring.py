"""Scoring, baselines, task regexes and the resolution choice, on given predictions."""

from __future__ import annotations

from pathlib import Path

import pytest
from evalkit_helpers import RULE

from mindvl.common.errors import ConfigError
from mindvl.common.tokens import ImageTokenRule
from mindvl.trainer.evaluation.items import EvalItem
from mindvl.trainer.evaluation.report import SettingResult
from mindvl.trainer.evaluation.resolution import pick_best
from mindvl.trainer.evaluation.scoring import (
    group_score,
    majority_answer,
    normalise_answer,
    overall,
    scores_by,
)
from mindvl.trainer.evaluation.tasks import load_tasks
from mindvl.trainer.evaluation.val_loss import ValLoss

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "pipelines" / "eval" / "tasks.yaml"


def item(task: str, reference: str, category: str = "scene") -> EvalItem:
    return EvalItem("k", category, task, "q", reference, b"", (28, 28))


def test_normalise_answer():
    assert normalise_answer("  Red.  ") == "red"
    assert normalise_answer("A  big\n blue   mug.") == "a big blue mug"
    assert normalise_answer("3.5") == "3.5"
    assert normalise_answer("e.g.") == "e.g"  # only one trailing period goes


def test_majority_answer_counts_normalised_and_breaks_ties_alphabetically():
    assert majority_answer(["red", "Red.", "blue", "green"]) == "red"
    assert majority_answer(["3", "2", "3", "2"]) == "2"
    assert majority_answer(["b", "a"]) == "a"
    assert majority_answer([]) == ""


def test_group_score_on_known_predictions():
    g = group_score(["red", "Red.", "blue", "green"], ["RED", "blue", "blue.", "x"])
    assert (g.n, g.correct, g.accuracy) == (4, 2, 0.5)
    assert (g.baseline_answer, g.baseline_correct, g.baseline_accuracy) == ("red", 2, 0.5)


def test_scores_by_task_and_overall_are_consistent():
    items = [
        item("colour", "red"),
        item("colour", "red"),
        item("colour", "blue", "chart"),
        item("count", "3"),
        item("count", "2", "chart"),
    ]
    preds = ["red", "blue", "blue", "2", "2"]
    tasks = scores_by(items, preds, lambda it: it.task)
    assert list(tasks) == ["colour", "count"]
    assert (tasks["colour"].n, tasks["colour"].correct) == (3, 2)
    assert tasks["colour"].baseline_answer == "red"
    assert tasks["colour"].baseline_accuracy == pytest.approx(2 / 3)
    assert (tasks["count"].baseline_answer, tasks["count"].baseline_correct) == ("2", 1)
    total = overall(tasks)
    assert (total.n, total.correct, total.baseline_correct) == (5, 3, 3)
    cats = scores_by(items, preds, lambda it: it.category)
    assert {k: (v.n, v.correct) for k, v in cats.items()} == {"chart": (2, 2), "scene": (3, 1)}
    with pytest.raises(ValueError, match="predictions"):
        scores_by(items, preds[:-1], lambda it: it.task)


def test_task_file_classifies_kit_questions():
    tasks = load_tasks(TASKS)
    assert tasks.classify("What colour is the circle?") == "colour"
    assert tasks.classify("What color is the background?") == "background"
    assert tasks.classify("How many squares are there?") == "count"
    assert tasks.classify("How many shapes are there?") == "total_count"
    assert tasks.classify("What text is written in the image?") == "ocr_text"
    assert tasks.classify("Where is the red star? Answer as [x0, y0, x1, y1]") == "box"
    assert tasks.classify("What is the value of B?") == "value"
    assert tasks.classify("What is the answer to the equation in the image?") == "value"
    assert tasks.classify("Describe the image.") == "other"
    assert load_tasks(None).classify("anything") == "all"


def test_task_file_errors_name_the_field(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("tasks:\n  colour: '^What'\nunmached: x\n")
    with pytest.raises(ConfigError, match=r"unmached: unknown field \(allowed: tasks, unmatched\)"):
        load_tasks(bad)
    bad.write_text("tasks:\n  colour: '(unclosed'\n")
    with pytest.raises(ConfigError, match="bad regex"):
        load_tasks(bad)


def result(max_pixels: int, accuracy: float, loss: float | None) -> SettingResult:
    g = group_score(["a"], ["a" if accuracy else "b"])
    vl = ValLoss(loss=loss, loss_tokens=1, samples=1, packs=1, dropped={}, truncated=0)
    rule = ImageTokenRule(min_pixels=RULE.min_pixels, max_pixels=max_pixels)
    return SettingResult(
        image_tokens=rule, max_new_tokens=4, overall=g, macro_accuracy=g.accuracy,
        tasks={"all": g}, categories={}, val_loss=vl, seconds=0.0,
    )  # fmt: skip


def test_pick_best_accuracy_then_loss_then_pixels():
    a, b, c = result(6272, 1.0, 2.0), result(12544, 0.0, 1.0), result(3136, 1.0, 2.5)
    assert pick_best([b, a, c]) is a  # accuracy first, then the lower loss
    d = result(3136, 1.0, 2.0)
    assert pick_best([a, d]) is d  # same accuracy and loss: fewer pixels
    e = result(3136, 1.0, None)
    assert pick_best([e, a]) is a  # a missing loss ranks last


def test_every_answered_question_of_a_sample_is_an_item():
    """A held-out conversation with several questions gives one item per answered question
    (asked alone with the image); an unanswered trailing question is not scored."""
    from mindvl.common.sample import IMAGE_PLACEHOLDER, ImageRef, Sample, TokenCounts, Turn
    from mindvl.trainer.data.shards import RawSample
    from mindvl.trainer.evaluation.items import to_items

    turns = [
        Turn(role="user", content=f"{IMAGE_PLACEHOLDER}\nWhat colour is the circle?"),
        Turn(role="assistant", content="red"),
        Turn(role="user", content="How many squares are there?"),
        Turn(role="assistant", content=" 2 "),
        Turn(role="user", content="What colour is the background?"),
    ]
    ref = ImageRef(member="img0.jpg", format="jpg", width=56, height=56, sha256="0" * 64,
                   tokens=4)  # fmt: skip
    sample = Sample(key="k1", source="s", category="caption", conversation=turns, images=[ref],
                    tokens=TokenCounts(image=4, text=30))  # fmt: skip
    raw = RawSample("k1", {"json": sample.to_json_bytes(), "img0.jpg": b"jpeg"}, 0, 0)
    items, reason = to_items(raw, load_tasks(TASKS))
    assert reason is None
    assert [(it.turn, it.task, it.question, it.reference) for it in items] == [
        (0, "colour", "What colour is the circle?", "red"),
        (1, "count", "How many squares are there?", "2"),
    ]
    assert {it.key for it in items} == {"k1"} and all(it.image == b"jpeg" for it in items)

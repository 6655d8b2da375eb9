"""End to end on a tiny random checkpoint: report structure and numbers, the validation
loss, the resolution search writing inference.json, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from evalkit_helpers import RULE, caption_sample, qa_sample, train_tokenizer, write_build

from mindvl.common.cli import main
from mindvl.common.errors import UserError
from mindvl.common.text_tokens import TextTokenizer
from mindvl.common.tokens import ImageTokenRule
from mindvl.trainer.data.encode import DropCounter, encode_sample
from mindvl.trainer.evaluation.report import SettingResult
from mindvl.trainer.evaluation.resolution import TABLE_NAME, write_choice
from mindvl.trainer.evaluation.run import EvalOptions, evaluate_checkpoint
from mindvl.trainer.evaluation.scoring import group_score
from mindvl.trainer.evaluation.val_loss import ValLoss
from mindvl.trainer.model import InferenceConfig, MindVL, count_loss_tokens
from mindvl.trainer.model.checkpoint_io import read_inference, save_mindvl
from mindvl.trainer.model.config import INFERENCE_NAME
from mindvl.trainer.model.tiny import tiny_config

TASKS = Path(__file__).resolve().parents[2] / "pipelines" / "eval" / "tasks.yaml"
# (question, answer, category, image size): colour refs normalise to red x2, blue, green;
# count refs are a 2/2 tie between "2" and "3".
QA = [
    ("What colour is the circle?", "red", "scene", (112, 112)),
    ("What colour is the square?", "Red.", "scene", (84, 56)),
    ("What colour is the star?", "blue", "scene", (140, 56)),
    ("What colour is the triangle?", "green", "grounding", (56, 112)),
    ("How many squares are there?", "3", "scene", (100, 70)),
    ("How many circles are there?", "2", "scene", (70, 100)),
    ("How many stars are there?", "3", "chart", (120, 90)),
    ("How many lines are there?", "2", "chart", (56, 56)),
    ("What text is written in the image?", "hello", "ocr", (150, 60)),
]
OPTS = EvalOptions(seq_len=256, max_patches=4096, batch_size=8, device="cpu")


@pytest.fixture(autouse=True)
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalrep")
    tok_dir = train_tokenizer(root / "tok")
    tok = TextTokenizer.from_path(tok_dir)
    samples = [qa_sample(i, q, a, c, s, tok, RULE) for i, (q, a, c, s) in enumerate(QA)]
    samples.append(caption_sample(0, "A red circle on a white background.", tok, RULE))
    write_build(root / "data", tok_dir, samples)
    torch.manual_seed(0)
    eos = tok.hf.convert_tokens_to_ids("<|endoftext|>")
    model = MindVL(tiny_config(len(tok.hf), tok.image_pad_id, eos_token_id=eos))
    inference = InferenceConfig(image_tokens=RULE, max_new_tokens=3)
    save_mindvl(model, root / "ckpt", tokenizer=tok_dir, inference=inference)
    return root, tok, samples


def test_report_structure_and_numbers(built):
    root, tok, samples = built
    report = evaluate_checkpoint(root / "ckpt", root / "data", TASKS, opts=OPTS)
    assert report.data.samples_read == 10 and report.data.samples_scored == 9
    assert report.data.skipped == {"caption sample": 1}
    assert report.resolution_search is None
    [s] = report.settings
    assert s.image_tokens == RULE and s.max_new_tokens == 3
    assert {k: v.n for k, v in s.tasks.items()} == {"colour": 4, "count": 4, "ocr_text": 1}
    assert (s.tasks["colour"].baseline_answer, s.tasks["colour"].baseline_accuracy) == ("red", 0.5)
    assert (s.tasks["count"].baseline_answer, s.tasks["count"].baseline_accuracy) == ("2", 0.5)
    assert s.tasks["ocr_text"].baseline_accuracy == 1.0
    assert {k: v.n for k, v in s.categories.items()} == {
        "chart": 2,
        "grounding": 1,
        "ocr": 1,
        "scene": 5,
    }
    assert s.overall.n == 9 and s.overall.baseline_correct == 2 + 2 + 1
    for g in [s.overall, *s.tasks.values(), *s.categories.values()]:
        assert 0.0 <= g.accuracy <= 1.0 and g.correct <= g.n
    assert s.macro_accuracy == pytest.approx(sum(g.accuracy for g in s.tasks.values()) / 3)
    # every sample (the caption too) carries loss; the count matches the trainer's encoding
    expected = 0
    for sample, blobs in samples:
        members = {"json": sample.to_json_bytes(), "img0.jpg": blobs[0]}
        enc = encode_sample(members, 0, 0, tok, RULE, 256, 4096, DropCounter())
        expected += count_loss_tokens(torch.tensor([enc.labels]), [0, enc.length])
    assert s.val_loss.samples == 10 and s.val_loss.loss_tokens == expected
    assert 0.0 < s.val_loss.loss < 20.0


def test_val_loss_is_a_token_mean_whatever_the_packing(built):
    root, _, _ = built
    one = evaluate_checkpoint(root / "ckpt", root / "data", opts=OPTS).settings[0].val_loss
    tight = EvalOptions(seq_len=72, max_patches=4096, batch_size=8, device="cpu")
    many = evaluate_checkpoint(root / "ckpt", root / "data", opts=tight).settings[0].val_loss
    assert one.packs < many.packs and many.dropped == {}
    assert many.loss == pytest.approx(one.loss, rel=1e-4)


def test_resolution_search_refuses_to_choose_at_or_below_baseline(built, tmp_path, capsys):
    """The random model scores nothing: every setting is at or below the majority
    baseline, so the search says so, records the table and keeps inference.json."""
    root, _, _ = built
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for f in (root / "ckpt").iterdir():
        (ckpt / f.name).write_bytes(f.read_bytes())
    before = (ckpt / INFERENCE_NAME).read_bytes()
    out = tmp_path / "report.json"
    args = ["eval", str(ckpt), "--data", str(root / "data"), "--resolution-search",
            "--max-pixels", "12544,3136,6272", "--out", str(out), "--seq-len", "256",
            "--device", "cpu", "--limit", "6", "--tasks", str(TASKS), "--threads", "1"]  # fmt: skip
    threads = torch.get_num_threads()
    try:
        main(args)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    report = json.loads(out.read_text())
    settings = report["settings"]
    assert [s["image_tokens"]["max_pixels"] for s in settings] == [3136, 6272, 12544]
    assert all(s["image_tokens"]["min_pixels"] == RULE.min_pixels for s in settings)
    assert all(s["overall"]["correct"] <= s["overall"]["baseline_correct"] for s in settings)
    assert report["data"]["samples_read"] == 6
    losses = [s["val_loss"]["loss"] for s in settings]
    assert len(set(losses)) == 3  # image token counts differ between the settings
    choice = report["resolution_search"]
    assert (
        choice["chosen"] is None
        and "no setting beats the majority-answer baseline" in (choice["note"])
    )
    assert (ckpt / INFERENCE_NAME).read_bytes() == before
    table = json.loads((ckpt / TABLE_NAME).read_text())
    assert [r["max_pixels"] for r in table["table"]] == [3136, 6272, 12544]
    assert table["chosen"] is None and table["previous"] == RULE.model_dump()
    shown = capsys.readouterr().out
    assert "resolution search: no setting beats the majority-answer baseline" in shown
    assert "chosen max_pixels=" not in shown
    header = next(line for line in shown.splitlines() if line.startswith("task "))
    assert header.split()[3:] == ["max_pixels=3136", "max_pixels=6272", "max_pixels=12544"]


def test_resolution_search_writes_the_best_rule_that_beats_the_baseline(built, tmp_path):
    root, _, _ = built
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for f in (root / "ckpt").iterdir():
        (ckpt / f.name).write_bytes(f.read_bytes())
    refs = ["red", "red", "blue", "green"]

    def setting(max_pixels: int, preds: list[str], loss: float) -> SettingResult:
        g = group_score(refs, preds)
        vl = ValLoss(loss=loss, loss_tokens=1, samples=1, packs=1, dropped={}, truncated=0)
        rule = ImageTokenRule(min_pixels=RULE.min_pixels, max_pixels=max_pixels)
        return SettingResult(image_tokens=rule, max_new_tokens=3, overall=g,
                             macro_accuracy=g.accuracy, tasks={"colour": g}, categories={},
                             val_loss=vl, seconds=0.0)  # fmt: skip

    at_baseline = setting(3136, ["red", "red", "red", "red"], 1.0)  # 2 of 4 = the baseline
    better = setting(6272, ["red", "red", "blue", "x"], 2.0)  # 3 of 4
    choice = write_choice(ckpt, [at_baseline, better], "data")
    assert choice.chosen == better.image_tokens and choice.note == ""
    assert read_inference(ckpt).image_tokens == better.image_tokens
    assert read_inference(ckpt).max_new_tokens == 3  # only the rule changes
    table = json.loads((ckpt / TABLE_NAME).read_text())
    assert table["chosen"] == better.image_tokens.model_dump()


def test_bad_checkpoint_and_flags_are_one_line_errors(built, tmp_path, capsys):
    root, _, _ = built
    data = str(root / "data")
    for ckpt, message in [
        (tmp_path / "missing", "error: not a checkpoint directory"),
        (tmp_path, "error: not a MindVL checkpoint (no config.json)"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(["eval", str(ckpt), "--data", data, "--device", "cpu"])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith(message) and err.count("\n") == 1
    with pytest.raises(UserError, match="--max-pixels 1000 with min_pixels 3136"):
        evaluate_checkpoint(root / "ckpt", data, max_pixels=[1000], opts=OPTS)
    with pytest.raises(UserError, match="manifest not found"):
        evaluate_checkpoint(root / "ckpt", tmp_path, opts=OPTS)


def test_predictions_do_not_depend_on_batching(built):
    from mindvl.trainer.evaluation.items import read_eval_set
    from mindvl.trainer.evaluation.predict import predict
    from mindvl.trainer.evaluation.run import load_checkpoint
    from mindvl.trainer.evaluation.tasks import load_tasks

    root, _, _ = built
    model, tok, inference = load_checkpoint(root / "ckpt", "cpu")
    data = read_eval_set(root / "data", load_tasks(None))
    one = predict(model, tok, data.items, inference.image_tokens, 3, batch_size=1)
    many = predict(model, tok, data.items, inference.image_tokens, 3, batch_size=8)
    assert len(one) == 9 and one == many


def test_answers_stop_at_the_longest_reference_plus_a_margin(built, tmp_path):
    """A checkpoint allowing 64 new tokens is asked for at most the longest reference's
    tokens + ANSWER_MARGIN: a longer answer could not match exactly anyway."""
    from mindvl.trainer.evaluation.run import ANSWER_MARGIN
    from mindvl.trainer.model.checkpoint_io import write_inference

    root, tok, _ = built
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for f in (root / "ckpt").iterdir():
        (ckpt / f.name).write_bytes(f.read_bytes())
    write_inference(ckpt, InferenceConfig(image_tokens=RULE, max_new_tokens=64))
    preds = tmp_path / "preds.jsonl"
    report = evaluate_checkpoint(ckpt, root / "data", TASKS, opts=OPTS, predictions_file=preds)
    longest = max(len(tok.encode(a)) for _, a, _, _ in QA)
    [s] = report.settings
    assert s.max_new_tokens == longest + ANSWER_MARGIN < 64
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert all(len(tok.encode(r["prediction"])) <= s.max_new_tokens for r in rows)
    limited = EvalOptions(seq_len=256, max_patches=4096, batch_size=8, max_new_tokens=2,
                          device="cpu")  # fmt: skip
    assert (
        evaluate_checkpoint(ckpt, root / "data", TASKS, opts=limited).settings[0].max_new_tokens
        == 2
    )

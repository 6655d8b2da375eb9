"""A tiny model overfit on four held-out samples answers them all: accuracy 1.0 vs 0.5 for
the majority baseline, and a validation loss near zero."""

from __future__ import annotations

import pytest
import torch
from evalkit_helpers import RULE, qa_sample, train_tokenizer, write_build

from mindvl.common.text_tokens import TextTokenizer
from mindvl.trainer.data.encode import DropCounter, encode_sample
from mindvl.trainer.data.packing import BestFitPacker, PackBudget, build_batch
from mindvl.trainer.evaluation.run import EvalOptions, evaluate_checkpoint
from mindvl.trainer.evaluation.tasks import TaskSet
from mindvl.trainer.model import InferenceConfig, MindVL
from mindvl.trainer.model.checkpoint_io import save_mindvl
from mindvl.trainer.model.tiny import tiny_config

QA = [
    ("What colour is the circle?", "red", "scene", (112, 112)),
    ("What colour is the square?", "blue", "scene", (84, 56)),
    ("How many squares are there?", "3", "scene", (140, 56)),
    ("How many circles are there?", "2", "chart", (56, 112)),
]
SEQ_LEN = 256


@pytest.fixture(autouse=True)
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def test_overfit_model_scores_every_answer(tmp_path):
    tok_dir = train_tokenizer(tmp_path / "tok")
    tok = TextTokenizer.from_path(tok_dir)
    samples = [qa_sample(i, q, a, c, s, tok, RULE) for i, (q, a, c, s) in enumerate(QA)]
    write_build(tmp_path / "data", tok_dir, samples)

    packer = BestFitPacker(PackBudget(SEQ_LEN, 4096), buffer_size=len(samples))
    for sample, blobs in samples:
        members = {"json": sample.to_json_bytes(), "img0.jpg": blobs[0]}
        packer.add(encode_sample(members, 0, 0, tok, RULE, SEQ_LEN, 4096, DropCounter()))
    pack = packer.pop_pack()
    assert len(pack) == 4 and packer.pop_pack() == []
    batch = build_batch(pack, SEQ_LEN, tok.pad_id, RULE)

    torch.manual_seed(0)
    eos = tok.hf.convert_tokens_to_ids("<|endoftext|>")
    model = MindVL(tiny_config(len(tok.hf), tok.image_pad_id, eos_token_id=eos))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        out = model(batch)
        loss = out.loss_sum / out.loss_tokens
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if loss.detach().item() < 0.1:
            break
    assert loss.detach().item() < 0.1
    inference = InferenceConfig(image_tokens=RULE, max_new_tokens=6)
    save_mindvl(model, tmp_path / "ckpt", tokenizer=tok_dir, inference=inference)

    tasks = tmp_path / "tasks.yaml"
    tasks.write_text("tasks:\n  colour: '^What colou?r'\n  count: '^How many'\n")
    opts = EvalOptions(seq_len=SEQ_LEN, max_patches=4096, device="cpu")
    preds = tmp_path / "predictions.jsonl"
    report = evaluate_checkpoint(tmp_path / "ckpt", tmp_path / "data", tasks, opts=opts,
                                 predictions_file=preds)  # fmt: skip
    [s] = report.settings
    assert s.overall.accuracy == 1.0 and s.overall.baseline_accuracy == 0.5
    assert {k: (g.n, g.accuracy) for k, g in s.tasks.items()} == {
        "colour": (2, 1.0),
        "count": (2, 1.0),
    }
    assert s.categories["chart"].accuracy == 1.0
    assert s.val_loss.loss < 0.2 and s.val_loss.samples == 4
    rows = preds.read_text().splitlines()
    assert len(rows) == 4 and all('"correct": true' in r for r in rows)
    assert TaskSet.model_validate({"tasks": {}}).classify("x") == "other"

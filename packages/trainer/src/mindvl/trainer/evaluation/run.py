"""Evaluate one checkpoint on a held-out build under one or several image rules.

The checkpoint supplies the model, its tokenizer (saved beside the weights) and its
``inference.json`` (the image rule and answer length used when no rule is given). The
evaluation set is read once; each rule then costs one generation pass over the scored
items and one packed forward pass for the validation loss.

Answers are generated up to the longest reference answer plus ``ANSWER_MARGIN`` tokens
(at most the checkpoint's ``max_new_tokens``): exact match compares whole normalised
answers, so a longer answer cannot score, and a model that has not learnt to stop would
otherwise generate the full length on every question.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mindvl.common.errors import UserError
from mindvl.common.progress import Mode, bar
from mindvl.common.tokens import ImageTokenRule
from mindvl.trainer.evaluation.items import EvalSet, read_eval_set
from mindvl.trainer.evaluation.predict import predict
from mindvl.trainer.evaluation.report import DataRecord, EvalReport, SettingResult
from mindvl.trainer.evaluation.resolution import (
    candidate_rules,
    default_max_pixels,
    write_choice,
)
from mindvl.trainer.evaluation.scoring import normalise_answer, overall, scores_by
from mindvl.trainer.evaluation.tasks import load_tasks
from mindvl.trainer.evaluation.val_loss import validation_loss

ANSWER_MARGIN = 4  # tokens beyond the longest reference: case, spacing, a final period


@dataclass(frozen=True)
class EvalOptions:
    seq_len: int = 4096  # pack length for the validation loss
    max_patches: int = 16384  # ViT patches per pack
    batch_size: int = 16  # generation rows per batch
    max_new_tokens: int | None = None  # default: the checkpoint's inference.json
    limit: int | None = None  # read only the first N samples
    device: str = "auto"
    progress: Mode = "off"  # per-setting bars on a terminal
    threads: int | None = None  # torch CPU threads (None: torch's default)


def load_checkpoint(path: Path, device: str):
    """(model in eval mode, tokenizer, inference config); one-line errors for bad paths."""
    from mindvl.common.text_tokens import TextTokenizer
    from mindvl.trainer.device.attention import apply_attention_backend, default_backend_name
    from mindvl.trainer.device.select import select_device
    from mindvl.trainer.model.checkpoint_io import load_mindvl, read_inference

    if not path.is_dir():
        raise UserError(f"not a checkpoint directory: {path}")
    dev = select_device(None if device == "auto" else device).device(0)
    model = load_mindvl(path, device=dev)
    apply_attention_backend(model, default_backend_name(dev))
    tokenizer = TextTokenizer.from_path(path)
    if model.config.image_pad_token_id != tokenizer.image_pad_id:
        raise UserError(
            f"{path}: model image_pad_token_id {model.config.image_pad_token_id} differs from"
            f" its tokenizer's <|image_pad|> id {tokenizer.image_pad_id}"
        )
    return model.eval(), tokenizer, read_inference(path)


def evaluate_setting(
    model, tokenizer, data: EvalSet, rule: ImageTokenRule, max_new_tokens: int, opts: EvalOptions
) -> tuple[SettingResult, list[str]]:
    from mindvl.trainer.data.packing import PackBudget

    t0 = time.perf_counter()
    total = len(data.items) + len(data.raw)
    with bar(total, f"max_pixels={rule.max_pixels}", opts.progress, "sample") as b:
        b.set_postfix_str("answers", refresh=False)
        preds = predict(
            model, tokenizer, data.items, rule, max_new_tokens, opts.batch_size, b.update
        )
        tasks = scores_by(data.items, preds, lambda it: it.task)
        b.set_postfix_str(f"accuracy {overall(tasks).accuracy:.3f}, val loss", refresh=False)
        budget = PackBudget(opts.seq_len, opts.max_patches)
        loss = validation_loss(model, tokenizer, data.raw, rule, budget, on_pack=b.update)
    result = SettingResult(
        image_tokens=rule,
        max_new_tokens=max_new_tokens,
        overall=overall(tasks),
        macro_accuracy=sum(g.accuracy for g in tasks.values()) / len(tasks) if tasks else 0.0,
        tasks=tasks,
        categories=scores_by(data.items, preds, lambda it: it.category),
        val_loss=loss,
        seconds=time.perf_counter() - t0,
    )
    return result, preds


def answer_budget(tokenizer, items) -> int:
    """Tokens of the longest reference answer plus ``ANSWER_MARGIN``."""
    longest = max((len(tokenizer.encode(it.reference)) for it in items), default=0)
    return longest + ANSWER_MARGIN


def prediction_rows(data: EvalSet, rule: ImageTokenRule, preds: Sequence[str]) -> list[dict]:
    return [
        {
            "key": it.key,
            "turn": it.turn,
            "max_pixels": rule.max_pixels,
            "task": it.task,
            "category": it.category,
            "question": it.question,
            "reference": it.reference,
            "prediction": p,
            "correct": normalise_answer(p) == normalise_answer(it.reference),
        }
        for it, p in zip(data.items, preds, strict=True)
    ]


def evaluate_checkpoint(
    checkpoint: str | Path,
    data_dir: str | Path,
    tasks_file: str | Path | None = None,
    max_pixels: Sequence[int] | None = None,
    resolution_search: bool = False,
    opts: EvalOptions | None = None,
    predictions_file: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> EvalReport:
    """Evaluate; with ``resolution_search`` also rewrite the checkpoint's inference rule."""
    opts = opts or EvalOptions()
    if opts.threads:
        import torch

        torch.set_num_threads(opts.threads)
    checkpoint = Path(checkpoint)
    tasks = load_tasks(tasks_file)
    model, tokenizer, inference = load_checkpoint(checkpoint, opts.device)
    data = read_eval_set(data_dir, tasks, opts.limit)
    if not data.raw:
        raise UserError(f"{data_dir}: the evaluation set has no samples")
    if resolution_search or max_pixels:
        grid = max_pixels or default_max_pixels(inference.image_tokens)
        rules = candidate_rules(inference.image_tokens.min_pixels, grid)
    else:
        rules = [inference.image_tokens]
    max_new = opts.max_new_tokens or min(
        inference.max_new_tokens, answer_budget(tokenizer, data.items)
    )
    results, rows = [], []
    for rule in rules:
        result, preds = evaluate_setting(model, tokenizer, data, rule, max_new, opts)
        results.append(result)
        rows += prediction_rows(data, rule, preds)
        if log:
            log(
                f"max_pixels={rule.max_pixels}: accuracy {result.overall.accuracy:.3f}"
                f" val_loss {result.val_loss.loss} ({result.seconds:.1f}s)"
            )
    if predictions_file is not None:
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
        Path(predictions_file).write_text(text)
    choice = write_choice(checkpoint, results, str(data_dir)) if resolution_search else None
    m = data.manifest
    record = DataRecord(
        path=str(data_dir),
        manifest_name=m.name,
        stage=m.stage,
        total_samples=m.total_samples,
        samples_read=len(data.raw),
        samples_scored=len({it.key for it in data.items}),
        questions_scored=len(data.items),
        keys_digest=m.selected_keys_digest,
        skipped=dict(sorted(data.skipped.items())),
    )
    return EvalReport(
        checkpoint=str(checkpoint),
        data=record,
        tasks_file=None if tasks_file is None else str(tasks_file),
        settings=results,
        resolution_search=choice,
    )

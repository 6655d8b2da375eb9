"""Greedy answers for the scored items, batched through the model's own ``generate``.

Items are batched in order of image tokens then question length so a batch's rows need
little left padding; answers come back in the items' order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mindvl.common.tokens import ImageTokenRule
from mindvl.trainer.evaluation.items import EvalItem


def predict(
    model,
    tokenizer,
    items: Sequence[EvalItem],
    rule: ImageTokenRule,
    max_new_tokens: int,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> list[str]:
    """Answers in the items' order; ``on_batch(n)`` is told each batch's size (progress)."""
    from mindvl.trainer.model.generate import generate

    order = sorted(
        range(len(items)), key=lambda i: (rule.tokens(*items[i].size), len(items[i].question), i)
    )
    out = [""] * len(items)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        answers = generate(
            model,
            tokenizer,
            [items[i].image for i in chunk],
            [items[i].question for i in chunk],
            rule,
            {"max_new_tokens": max_new_tokens},
        )
        for i, answer in zip(chunk, answers, strict=True):
            out[i] = answer
        if on_batch is not None:
            on_batch(len(chunk))
    return out

"""Validation loss: the token-mean next-token loss over the evaluation set, no gradients.

Samples are encoded and packed exactly as in training (:func:`encode_sample`,
:class:`BestFitPacker`, :func:`build_batch`), but under the image rule being evaluated,
so a resolution search compares losses of the same samples at different image token
counts. The mean is over every loss token of the set (sum of losses / loss tokens), not a
mean of per-pack means. Samples that do not fit the pack budget are counted, not scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mindvl.common.config import StrictModel
from mindvl.common.tokens import ImageTokenRule
from mindvl.trainer.data.encode import DropCounter, encode_sample
from mindvl.trainer.data.packing import BestFitPacker, PackBudget, build_batch
from mindvl.trainer.data.shards import RawSample


class ValLoss(StrictModel):
    loss: float | None  # None when no sample carried loss
    loss_tokens: int
    samples: int  # samples that entered a pack
    packs: int
    dropped: dict[str, int]
    truncated: int


def validation_loss(
    model,
    tokenizer,
    raw: Sequence[RawSample],
    rule: ImageTokenRule,
    budget: PackBudget,
    buffer_size: int = 128,
    on_pack: Callable[[int], None] | None = None,
) -> ValLoss:
    """``on_pack(n)`` is told the samples of each pack run (progress)."""
    import torch

    device = model.projector.fc1.weight.device
    drops = DropCounter()
    packer = BestFitPacker(budget, buffer_size=buffer_size, max_wait=buffer_size)
    total, tokens, packs, samples = 0.0, 0, 0, 0

    def run(pack) -> None:
        nonlocal total, tokens, packs
        batch = build_batch(pack, budget.seq_len, tokenizer.pad_id, rule).to(device)
        out = model(batch)
        total += float(out.loss_sum)
        tokens += int(out.loss_tokens)
        packs += 1
        if on_pack is not None:
            on_pack(len(pack))

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for r in raw:
                enc = encode_sample(
                    r.members, r.shard, r.offset, tokenizer, rule,
                    budget.seq_len, budget.max_patches, drops,
                )  # fmt: skip
                if enc is None:
                    continue
                packer.add(enc)
                samples += 1
                if packer.ready:
                    run(packer.pop_pack())
            while pack := packer.pop_pack():
                run(pack)
    finally:
        model.train(was_training)
    return ValLoss(
        loss=total / tokens if tokens else None,
        loss_tokens=tokens,
        samples=samples,
        packs=packs,
        dropped=dict(drops.dropped),
        truncated=drops.truncated,
    )

"""Summed next-token cross-entropy over a packed row.

The model returns the SUM of token losses and the number of tokens that carry loss, never a
mean: the loop divides the summed gradients by the loss-token count of the whole global
batch (all micro-batches and ranks), so every token weighs the same however samples were
packed or split into micro-batches. Targets never cross a sample boundary: the last token
of one sample does not predict the first token of the next.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def shifted_targets(labels: torch.Tensor, cu_seqlens: list[int]) -> torch.Tensor:
    """(T-1,) targets for positions 0..T-2, with -100 where the next token starts a sample."""
    targets = labels.reshape(-1)[1:].clone()
    cut = [b - 1 for b in cu_seqlens[1:] if 0 < b < labels.numel()]
    if cut:
        targets[torch.tensor(cut, device=targets.device)] = IGNORE_INDEX
    return targets


def count_loss_tokens(labels: torch.Tensor, cu_seqlens: list[int]) -> int:
    """Tokens that carry loss in a packed row (what ``ModelOutput.loss_tokens`` will be)."""
    return int((shifted_targets(labels, cu_seqlens) != IGNORE_INDEX).sum())


def next_token_targets(labels: torch.Tensor, cu_seqlens: list[int]) -> torch.Tensor:
    """(T,) target of every position of the row: :func:`shifted_targets`, then -100 for the
    last position (a row split over ranks keeps each token's target with the token)."""
    targets = shifted_targets(labels, cu_seqlens)
    return torch.cat([targets, targets.new_full((1,), IGNORE_INDEX)])


def summed_target_loss(
    hidden: torch.Tensor, targets: torch.Tensor, lm_head
) -> tuple[torch.Tensor, int]:
    """Sum of CE of (1, t, d) hidden states against their (t,) targets; runs the LM head
    only on the positions that carry loss (saves memory)."""
    keep = targets != IGNORE_INDEX
    h = hidden.reshape(-1, hidden.shape[-1])[keep]
    logits = lm_head(h).float()
    loss = F.cross_entropy(logits, targets[keep], reduction="sum")
    return loss, int(keep.sum())

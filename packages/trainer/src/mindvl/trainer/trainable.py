"""The loop's side of freezing: resolve ``all``, and check the optimizer against it.

Freezing itself and the per-part report are the model's (:mod:`mindvl.trainer.model.freeze`).
"""

from __future__ import annotations

from torch import nn

from mindvl.trainer.model.freeze import format_report, parameter_report, set_trainable
from mindvl.trainer.model.mindvl import PARTS


def apply_trainable(model: nn.Module, parts: list[str]) -> str:
    """Freeze all but ``parts`` (``all`` = every part); return the report table to print."""
    set_trainable(model, list(PARTS) if "all" in parts else parts)
    return format_report(parameter_report(model))


def check_optimizer_covers(model: nn.Module, optimizer, allow_none: bool = False) -> None:
    """The optimizer must hold exactly the trainable parameters: no frozen one, none missing.

    ``allow_none``: ``model`` may hold no trainable parameter (a pipeline stage of frozen
    layers, while another stage trains).
    """
    in_opt = {id(p) for g in optimizer.param_groups for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    missing = sorted(names[i] for i in trainable - in_opt)
    extra = sorted(names.get(i, "?") for i in in_opt - trainable)
    if missing or extra:
        raise RuntimeError(
            f"optimizer/trainable mismatch: missing {missing[:5]} ({len(missing)}), "
            f"frozen or foreign {extra[:5]} ({len(extra)})"
        )
    if not trainable and not allow_none:
        raise RuntimeError("no trainable parameters: check the stage's `trainable` list")

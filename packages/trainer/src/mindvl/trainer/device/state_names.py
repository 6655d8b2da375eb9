"""One name per tensor for checkpoints and weight loading, whatever wraps or cuts the model.

A parameter's name in this rank's module may carry what the run put around it:
activation checkpointing's ``_checkpoint_wrapped_module.``, ``torch.compile``'s
``_orig_mod.``, and with several pipeline stages per rank ``LocalStages``'s ``stages.N.``
(a single stage keeps the whole model's names). :func:`plain_name` takes them off.

A tied input embedding / LM head is one tensor in one process but two copies under
pipeline parallelism (first and last stage, kept equal by the pipeline). Checkpoints store
it once, under safetensors' name for it (the alphabetically first: the LM head), which
:func:`saved_name` gives every copy; each stage saves and loads the same entry.

Optimizer param groups: under pipeline parallelism each stage holds only the groups of its
parts; :func:`whole_groups` joins them into the whole model's groups in the 1-process order
(what a checkpoint's ``optimizer.json`` describes), :func:`local_groups` takes a stage's
back out.
"""

from __future__ import annotations

import re

import torch.distributed as dist

WRAPPERS = re.compile(r"(^|\.)(_checkpoint_wrapped_module|_orig_mod)\.")
LOCAL_STAGE = re.compile(r"^stages\.\d+\.")
EMBED = "llm.model.embed_tokens.weight"
HEAD = "llm.lm_head.weight"


def plain_name(name: str) -> str:
    """``name`` as in the whole, unwrapped model."""
    return LOCAL_STAGE.sub("", WRAPPERS.sub(r"\1", name))


def _tied(model) -> bool:
    inner = getattr(model, "module", model)  # DDP
    inner = inner.stages[0] if hasattr(inner, "stages") else inner  # LocalStages
    llm = getattr(inner, "llm", None)  # None: not a MindVL (tests' small modules)
    return llm is not None and bool(llm.config.tie_word_embeddings)


def saved_name(model):
    """A function: a name in ``model``'s state dict -> its name in a checkpoint."""
    tied = _tied(model)

    def name(local: str) -> str:
        plain = plain_name(local)
        return HEAD if tied and plain == EMBED else plain

    return name


def _key(group: dict) -> tuple:
    return group.get("part"), group.get("decay")


def whole_groups(model, groups: list[dict]) -> list[dict]:
    """The whole model's param groups from this rank's (``params``: checkpoint names).

    Under pipeline parallelism the stages' groups are gathered over ``pp`` (collective)
    and joined by (part, decay); a stage's empty group (``part: None``) is no group.
    """
    from mindvl.trainer.optimizer import group_order

    name = saved_name(model)
    mine = [dict(g, params=[name(p) for p in g["params"]]) for g in groups]
    group = getattr(model, "pp_group", None)
    if group is None:
        return mine
    parts: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(parts, mine, group=group)
    joined: dict[tuple, dict] = {}
    for g in (g for part in parts for g in part if g.get("part", "") is not None):
        into = joined.setdefault(_key(g), dict(g, params=[]))
        into["params"] += [p for p in g["params"] if p not in into["params"]]
    return sorted(joined.values(), key=group_order)


def local_groups(saved: list[dict], groups: list[dict]) -> list[dict]:
    """This optimizer's ``groups`` with the saved hyperparameters (lr, betas, ...) of the
    saved group of the same (part, decay); a stage's empty group stays as it is."""
    by_key = {_key(g): g for g in saved}
    return [dict(by_key[_key(g)], params=g["params"]) if _key(g) in by_key else g for g in groups]

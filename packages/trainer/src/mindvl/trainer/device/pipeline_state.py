"""Full (unsharded) model and optimizer state under pipeline parallelism.

Each rank holds one stage, so the full state is the union of the stages' states. Every
rank gathers its stage's full state over its data-parallel shards; the ranks of global
rank 0's ``pp`` column then send theirs to rank 0 (``gather_object``), which joins them
under the whole model's names. A tied input embedding / LM head lives on the first and the
last stage; the joined optimizer state keeps it once, under the input embedding's name, as
the 1-process state does. Loading takes the stage's own entries back out of a full state.

This keeps the existing full-state checkpoint format (weights via ``save_pretrained`` on
rank 0); it costs one stage's full state in memory per rank.
"""

from __future__ import annotations

import re

import torch
import torch.distributed as dist

LOCAL_PREFIX = re.compile(r"^stages\.\d+\.")  # LocalStages: several stages on one rank
EMBED = "llm.model.embed_tokens.weight"
HEAD = "llm.lm_head.weight"


def is_stage(model) -> bool:
    return hasattr(model, "pp_group")


def _cpu(state):
    return torch.utils._pytree.tree_map_only(torch.Tensor, lambda t: t.detach().cpu(), state)


def _tied(model) -> bool:
    llm = model.stages[0].llm if hasattr(model, "stages") else model.llm
    return bool(llm.config.tie_word_embeddings)


def whole_name(local: str) -> str:
    """A parameter's name in the whole model from its name in this rank's stage module."""
    return LOCAL_PREFIX.sub("", local)


def _whole_names(state: dict, optimizer: bool) -> dict:
    if not optimizer:
        return {whole_name(k): v for k, v in state.items()}
    groups = [dict(g, params=[whole_name(p) for p in g["params"]]) for g in state["param_groups"]]
    return {"state": {whole_name(k): v for k, v in state["state"].items()}, "param_groups": groups}


def gather_full_state(model, optimizer=None) -> dict:
    """The whole model's (or optimizer's) full state on rank 0; ``{}`` on other ranks."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=False)
    if optimizer is None:
        state = get_model_state_dict(model, options=options)
    else:
        state = get_optimizer_state_dict(model, optimizer, options=options)
    if not model.pp_column_zero:
        return {}
    state = _whole_names(_cpu(state), optimizer is not None)
    parts = [None] * dist.get_world_size(model.pp_group) if dist.get_rank() == 0 else None
    dist.gather_object(state, parts, dst=0, group=model.pp_group)
    if dist.get_rank() != 0:
        return {}
    if optimizer is None:
        return {k: v for part in parts for k, v in part.items()}
    return _join_optimizer(parts, _tied(model))


def _join_optimizer(parts: list[dict], tied: bool) -> dict:
    """One optimizer state from the stages': groups joined by (part, decay), in the
    1-process order (a stage holds only the groups of the parts it has)."""
    from mindvl.trainer.optimizer import group_order

    state, groups = {}, {}
    for part in parts:
        for key, value in part["state"].items():
            if not (tied and key == HEAD):
                state[key] = value
        for group in part["param_groups"]:
            if group.get("part", "") is None:  # a stage with nothing to train
                continue
            joined = groups.setdefault(
                (group.get("part"), group.get("decay")), dict(group, params=[])
            )
            joined["params"] += [p for p in group["params"] if not (tied and p == HEAD)]
    return {"state": state, "param_groups": sorted(groups.values(), key=group_order)}


def stage_optimizer_state(model, full: dict) -> dict:
    """This rank's entries of a full optimizer state, under its stage modules' names."""
    local = {whole_name(n): n for n, _ in model.named_parameters()}
    # tied: the last stage's LM head is saved as the input embedding
    head_only = _tied(model) and HEAD in local and EMBED not in local
    source = {HEAD: EMBED} if head_only else {}
    state = {
        name: full["state"][source.get(whole, whole)]
        for whole, name in local.items()
        if source.get(whole, whole) in full["state"]
    }
    groups = []
    for group in full["param_groups"]:
        saved = set(group["params"])
        names = [name for whole, name in local.items() if source.get(whole, whole) in saved]
        if names:  # the stage's own groups, in the saved (1-process) order
            groups.append(dict(group, params=names))
    if not groups:  # a stage with nothing to train: its one empty group
        groups = [{**full["param_groups"][0], "params": [], "part": None, "decay": None}]
    return {"state": state, "param_groups": groups}

"""Meta-device model building and per-rank materialisation, torchtitan's order.

The model is built on the ``meta`` device (shapes only, no memory), parallelised (tensor
parallel slices, FSDP2 shards, expert slices), and only then given storage: ``to_empty``
allocates each rank's own pieces, which are filled one module at a time:

* **from a model dir** (``init.checkpoint``): each rank reads just the slices it owns with
  ``safe_open(...).get_slice`` — never a whole tensor it does not keep;
* **from a config** (random init): each module's full tensors are initialised on the CPU by
  the module's own rule (its Hugging Face model's ``_init_weights``, else the module's
  ``reset_parameters``) under a seed derived from the stage seed and the module's name, and
  the rank keeps its slice. The init is therefore a function of the seed and the module
  names only: 1 process, DDP and FSDP over any number of ranks start from the same weights.
  The transient full tensors are one module's at a time (the largest: the embedding).
* **for a resume**: only non-persistent buffers (rotary frequencies) are computed; the
  weights come from the step checkpoint (:mod:`mindvl.trainer.checkpoint`).

A tied input/output embedding stays one tensor; it is filled once. Only parameters and
buffers are given storage: a tensor that parallelising code made from a parameter's
device and kept elsewhere (a closure, an attribute) stays on meta.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import torch
from torch import nn

from mindvl.common.errors import UserError
from mindvl.trainer.device.expert_parallel import expert_parameter_names


def build_on_meta(config, dtype: torch.dtype | None = None) -> nn.Module:
    """A MindVL with every parameter and buffer on the meta device."""
    from mindvl.trainer.model import MindVL

    with torch.device("meta"):
        model = MindVL(config)
    return model.to(dtype) if dtype is not None else model


def local_region(name: str, tensor: torch.Tensor, experts: dict) -> tuple[list[int], tuple]:
    """(full shape, index) of the piece of the full tensor ``name`` that ``tensor`` holds.

    A DTensor's piece comes from its mesh coordinate and placements (FSDP2 shards, TP...);
    an expert-parallel weight is further offset by its ep slice on the expert dimension.
    """
    from torch.distributed.tensor import DTensor

    if isinstance(tensor, DTensor):
        from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

        shape, offset = compute_local_shape_and_global_offset(
            tensor.shape, tensor.device_mesh, tensor.placements
        )
        shape, offset = list(shape), list(offset)
    else:
        shape, offset = list(tensor.shape), [0] * tensor.ndim
    full = list(tensor.shape)
    if name in experts:
        module = experts[name]
        offset[0] += module._ep_rank * module._ep_local
        full[0] = module._ep_local * module._ep_size
    return full, tuple(slice(o, o + s) for o, s in zip(offset, shape, strict=True))


def _owners(template: nn.Module) -> dict[str, nn.Module | None]:
    """Module name -> the nearest Hugging Face model at or above it (its init rule)."""
    from transformers import PreTrainedModel

    owners: dict[str, nn.Module | None] = {}
    for name, module in template.named_modules():
        parent = owners.get(name.rpartition(".")[0]) if name else None
        owners[name] = module if isinstance(module, PreTrainedModel) else parent
    return owners


def _seed(seed: int, name: str) -> int:
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:15], 16)


@torch.no_grad()
def _initialised_copy(name: str, module: nn.Module, owner, seed: int) -> nn.Module:
    """A CPU copy of ``module``'s own tensors (full shapes, no children), initialised."""
    tmp = copy.copy(module)
    tmp._modules = {}
    tmp._parameters = {
        k: None if p is None else nn.Parameter(torch.empty_like(p, device="cpu"), p.requires_grad)
        for k, p in module._parameters.items()
    }
    tmp._buffers = {
        k: None if b is None else torch.empty_like(b, device="cpu")
        for k, b in module._buffers.items()
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed(seed, name))
        if owner is not None:
            owner._init_weights(tmp)
        elif hasattr(tmp, "reset_parameters"):
            tmp.reset_parameters()
        elif tmp._parameters:
            raise UserError(f"no initialiser for {name or 'the model'} ({type(module).__name__})")
    return tmp


def _held(model: nn.Module) -> dict[str, str]:
    """Whole-model name -> this module's own name, for every tensor ``model`` holds
    (:func:`~mindvl.trainer.device.state_names.plain_name`: activation-checkpoint and
    compile wrappers, ``LocalStages`` prefixes; a pipeline stage holds part of the model)."""
    from mindvl.trainer.device.state_names import plain_name

    names = [n for n, _ in model.named_parameters(remove_duplicate=False)]
    names += [n for n, _ in model.named_buffers(remove_duplicate=False)]
    return {plain_name(n): n for n in names}


def _tensor(model: nn.Module, name: str) -> torch.Tensor:
    owner, _, leaf = name.rpartition(".")
    module = model.get_submodule(owner)
    return module._parameters[leaf] if leaf in module._parameters else module._buffers[leaf]


def _retie(model: nn.Module, template: nn.Module, held: dict[str, str]) -> None:
    """Make names that share one tensor in ``template`` share it in ``model`` again
    (``to_empty`` on an unsharded module gives each name its own tensor)."""
    groups: dict[int, list[str]] = {}
    for name, p in template.named_parameters(remove_duplicate=False):
        if name in held:
            groups.setdefault(id(p), []).append(held[name])
    for names in (g for g in groups.values() if len(g) > 1):
        kept = model.get_parameter(names[0])
        for name in names[1:]:
            owner, _, leaf = name.rpartition(".")
            model.get_submodule(owner)._parameters[leaf] = kept


@torch.no_grad()
def materialise(
    model: nn.Module,
    template: nn.Module,
    device: torch.device,
    seed: int = 0,
    weights: str | Path | None = None,
    init: bool = True,
) -> None:
    """Give ``model`` (on meta, possibly parallelised or a pipeline stage) storage on
    ``device`` and fill what it holds.

    ``template`` is an unparallelised meta copy of the whole model (full shapes, names).
    ``weights``: a model dir to read from; else ``init`` (random init) or nothing but the
    non-persistent buffers (``init=False``: a step checkpoint fills the rest). A tensor of
    several names (tied embedding) takes the value of its first name in ``template``'s
    order, on every rank holding any of its names (first and last pipeline stage).
    """
    from mindvl.trainer.device.state_names import plain_name
    from mindvl.trainer.model.weights_dir import tied_aliases, weight_map

    model.to_empty(device=device)
    held = _held(model)
    _retie(model, template, held)
    files = weight_map(weights) if weights is not None else None
    aliases = tied_aliases(template)
    stored = set(template.state_dict())  # parameters and persistent buffers
    experts = {plain_name(k): m for k, m in expert_parameter_names(model).items()}
    owners = _owners(template)
    sharing: dict[int, list[str]] = {}
    for name, t in (
        *template.named_parameters(remove_duplicate=False),
        *template.named_buffers(remove_duplicate=False),
    ):
        sharing.setdefault(id(t), []).append(name)
    filled: set[int] = set()
    for mname, tmod in template.named_modules():
        own = [
            (n, t) for n, t in (*tmod._parameters.items(), *tmod._buffers.items()) if t is not None
        ]
        tmp = None
        for n, t in own:
            fq = f"{mname}.{n}" if mname else n
            names = [a for a in sharing[id(t)] if a in held]
            from_file = files is not None and fq in stored
            if id(t) in filled or not names or not (from_file or init or fq not in stored):
                continue
            filled.add(id(t))
            if not from_file and tmp is None:
                tmp = _initialised_copy(mname, tmod, owners[mname], seed)
            targets = {id(x): (a, x) for a in names for x in [_tensor(model, held[a])]}
            for a, target in targets.values():
                shape, index = local_region(a, target, experts)
                if from_file:
                    key = fq if fq in files else aliases.get(fq, fq)
                    value = _read_slice(files, key, shape, index, weights)
                else:
                    value = (tmp._parameters[n] if n in tmp._parameters else tmp._buffers[n])[index]
                local = target.to_local() if hasattr(target, "to_local") else target
                local.copy_(value.to(local.dtype))
        del tmp  # before the next module's full tensors exist


def _read_slice(files: dict, key: str, shape: list[int], index: tuple, weights) -> torch.Tensor:
    """The ``index`` piece of tensor ``key``, read from its file without the rest."""
    from safetensors import safe_open

    if key not in files:
        raise UserError(f"{weights}: no tensor {key}")
    # opened per tensor: a file kept open keeps every page read so far mapped (and counted
    # in the rank's RSS) until it is closed
    with safe_open(str(files[key]), framework="pt") as f:
        sl = f.get_slice(key)
        if list(sl.get_shape()) != shape:
            raise UserError(f"{weights}: {key} has shape {sl.get_shape()}, the model {shape}")
        return sl[index]

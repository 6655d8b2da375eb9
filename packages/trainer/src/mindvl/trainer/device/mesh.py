"""The training DeviceMesh and the stage config's ``parallel:`` block.

One mesh for every parallel dimension, torchtitan-style, outermost first::

    pp, dp_replicate, dp_shard, cp, tp          (ep > 1 splits dp_shard into dp_shard_mod_ep, ep)

- ``dp_replicate`` x ``dp_shard`` = ``dp``: the data-parallel ranks. Only they read
  different samples; ranks that differ in ``tp``, ``cp`` or ``pp`` alone share a batch.
- FSDP2 shards parameters over ``dp_shard_cp`` (dp_shard x cp, flattened: context-parallel
  ranks hold the same weights) and replicates over ``dp_replicate`` (HSDP when both > 1).
- ``ep`` borrows its ranks from ``dp_shard``: the routed experts of each MoE layer are split
  over ``ep`` ranks and FSDP2-sharded over the ``dp_shard_mod_ep`` ranks that hold the same
  experts (with ``cp``, whose ranks route other tokens of the rows: sharded over ``cp`` and
  replicated over ``dp_shard_mod_ep``; with ``dp_replicate``, replicated over it too);
  every rank still reads its own samples.

Size-1 dimensions stay in the mesh, so code can always slice ``mesh["tp"]`` etc. The
flattened dimensions are ``dp`` (the loader's split, token counts), ``dp_shard_cp`` (FSDP)
and ``dp_cp`` (loss sums: each context-parallel rank holds a part of a row's tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mindvl.common.errors import UserError

AXES = ("pp", "dp_replicate", "dp_shard", "cp", "tp")
EXPERT_REPLICAS = "dp_replicate_shard_mod_ep"  # flattened under ep with dp_replicate and cp


@dataclass(frozen=True)
class ModelFacts:
    """What layout validation needs to know about the model (see :func:`model_facts`)."""

    llm_heads: int
    llm_kv_heads: int
    llm_layers: int
    vision_heads: int
    num_experts: int | None = None  # routed experts per MoE layer; None for a dense LLM
    # widths tensor parallelism splits (None: not known / no such layer)
    llm_vocab: int | None = None
    llm_mlp_width: int | None = None  # dense MLP layers' intermediate size; None if all MoE
    vision_mlp_width: int | None = None


@dataclass(frozen=True)
class ParallelDims:
    """A resolved layout: every degree is >= 1 and their product is the world size."""

    world: int
    dp_replicate: int = 1
    dp_shard: int = 1
    cp: int = 1
    tp: int = 1
    pp: int = 1
    ep: int = 1
    ddp: bool = field(default=False, compare=False)  # the old ``distributed: ddp`` spelling

    @property
    def dp(self) -> int:
        """Data-parallel degree: how many different batches one step reads."""
        return self.dp_replicate * self.dp_shard

    @property
    def sharded(self) -> bool:
        """Whether FSDP2 wraps the model (also for HSDP and for TP/CP/PP with dp 1)."""
        return self.world > 1 and not self.ddp

    @property
    def dp_shard_mod_ep(self) -> int:
        return self.dp_shard // self.ep

    def check(self, facts: ModelFacts) -> None:
        """Fail before any work, with one line, on a layout the model cannot take."""
        heads = (
            ("LLM attention heads", facts.llm_heads),
            ("LLM key/value heads", facts.llm_kv_heads),
        )
        splits = {  # what each degree must divide
            "tp": heads
            + (
                ("LLM vocabulary entries", facts.llm_vocab),
                ("LLM MLP hidden units", facts.llm_mlp_width),
                ("vision attention heads", facts.vision_heads),
                ("vision MLP hidden units", facts.vision_mlp_width),
            ),
        }
        for axis, items in splits.items():
            degree = getattr(self, axis)
            for what, n in items:
                if degree > 1 and n is not None and n % degree:
                    raise UserError(f"parallel.{axis} = {degree} does not divide the {n} {what}")
        # Ulysses splits each tp rank's query heads over the cp ranks (key/value heads are
        # repeated where fewer: context_parallel.kv_heads_for)
        if self.cp > 1 and facts.llm_heads % (self.cp * self.tp):
            degree = f"cp x tp = {self.cp * self.tp}" if self.tp > 1 else f"cp = {self.cp}"
            raise UserError(
                f"parallel.{degree} does not divide the {facts.llm_heads} LLM attention heads"
            )
        if self.pp > 1 and facts.llm_layers < self.pp:
            raise UserError(
                f"parallel.pp = {self.pp} stages need at least {self.pp} LLM layers"
                f" (the LLM has {facts.llm_layers})"
            )
        if self.ep > 1:
            if facts.num_experts is None:
                raise UserError(
                    f"parallel.ep = {self.ep} needs a mixture-of-experts LLM; this one is dense"
                )
            if facts.num_experts % self.ep:
                raise UserError(
                    f"parallel.ep = {self.ep} does not divide the {facts.num_experts} routed experts"
                )

    def check_row(self, seq_len: int) -> None:
        """Sequence parallelism splits every packed row of ``seq_len`` tokens (each ``cp``
        rank's slice of it) over ``tp``; pipeline stages exchange slices of one length, so
        under ``pp`` the row is not padded for ``cp`` either."""
        if self.tp == 1 and self.pp == 1:
            return  # cp alone pads each row to a multiple of cp
        if seq_len % (self.tp * self.cp):
            split = [a for a in ("tp", "cp") if getattr(self, a) > 1]
            degree = " x ".join(split) + f" = {self.tp * self.cp}"
            raise UserError(f"parallel.{degree} does not divide seq_len = {seq_len}")

    def coords(self, rank: int) -> dict[str, int]:
        """``rank``'s coordinate on each axis of :data:`AXES` (row-major, tp fastest)."""
        out = {}
        for axis in reversed(AXES):
            size = getattr(self, axis)
            out[axis] = rank % size
            rank //= size
        return out

    def dp_rank(self, rank: int) -> int:
        """``rank``'s index among the data-parallel ranks (which batch it reads)."""
        c = self.coords(rank)
        return c["dp_replicate"] * self.dp_shard + c["dp_shard"]


def resolve(spec, distributed: str | None, world: int) -> ParallelDims:
    """The stage config's ``parallel:`` block (and old ``distributed:``) on ``world`` ranks.

    ``dp_shard: -1`` takes the ranks the other degrees leave. The old ``distributed``
    switch still works alone: ``none`` (one process), ``ddp`` (DistributedDataParallel over
    all ranks) or ``fsdp`` (FSDP2 over all ranks, ``parallel.ep`` allowed).
    """
    degrees = {a: getattr(spec, a) for a in ("dp_replicate", "dp_shard", "cp", "tp", "pp")}
    if distributed is not None:
        defaults = {a: type(spec).model_fields[a].default for a in degrees}
        set_keys = [a for a, n in degrees.items() if n != defaults[a]]
        if set_keys:
            raise UserError(
                f"distributed: {distributed} cannot be combined with parallel.{set_keys[0]};"
                " drop distributed and write the whole layout under parallel:"
            )
        if distributed == "none":
            if world > 1:
                raise UserError(
                    f"{world} processes with distributed: none; drop distributed (the default"
                    " parallel: {dp_shard: -1} shards over all ranks) or write parallel:"
                )
            return ParallelDims(world=1, ep=_ep_alone(spec.ep, world))
        if distributed == "ddp":
            if spec.ep > 1:
                raise UserError(f"parallel.ep = {spec.ep} needs FSDP2; drop distributed: ddp")
            return ParallelDims(world=world, dp_replicate=world, ddp=True)
        return _checked(world, dict(degrees, dp_shard=world, dp_replicate=1), spec.ep)
    for axis, n in degrees.items():
        if n == 0 or n < -1 or (n == -1 and axis != "dp_shard"):
            raise UserError(f"parallel.{axis} must be >= 1 (dp_shard may be -1), got {n}")
    if degrees["dp_shard"] == -1:
        rest = degrees["dp_replicate"] * degrees["cp"] * degrees["tp"] * degrees["pp"]
        if world % rest:
            raise UserError(
                f"parallel: dp_replicate x cp x tp x pp = {rest} does not divide the {world} ranks"
            )
        degrees["dp_shard"] = world // rest
    return _checked(world, degrees, spec.ep)


def _ep_alone(ep: int, world: int) -> int:
    if ep > world:
        raise UserError(f"parallel.ep = {ep} is more than the {world} ranks")
    return ep


def _checked(world: int, degrees: dict[str, int], ep: int) -> ParallelDims:
    product = 1
    for n in degrees.values():
        product *= n
    if product != world:
        shown = " x ".join(f"{a} {n}" for a, n in degrees.items())
        raise UserError(f"parallel: {shown} = {product} ranks, but the world has {world}")
    if ep < 1:
        raise UserError(f"parallel.ep must be >= 1, got {ep}")
    if degrees["dp_shard"] % ep:
        raise UserError(
            f"parallel.ep = {ep} must divide dp_shard = {degrees['dp_shard']}"
            " (expert parallelism borrows data-parallel shard ranks)"
        )
    return ParallelDims(world=world, ep=ep, **degrees)


def model_facts(model) -> ModelFacts:
    """The :class:`ModelFacts` of a MindVL (reads configs only)."""
    cfg = model.llm.config
    heads = cfg.num_attention_heads
    moe = getattr(model, "moe", None)
    all_moe = moe is not None and len(moe.layers) == cfg.num_hidden_layers
    return ModelFacts(
        llm_heads=heads,
        llm_kv_heads=getattr(cfg, "num_key_value_heads", None) or heads,
        llm_layers=cfg.num_hidden_layers,
        vision_heads=model.vision.config.num_heads,
        num_experts=moe.num_experts if moe is not None else None,
        llm_vocab=cfg.vocab_size,
        llm_mlp_width=None if all_moe else cfg.intermediate_size,
        vision_mlp_width=model.vision.config.intermediate_size,
    )


def build_mesh(device_type: str, dims: ParallelDims):
    """The world mesh over :data:`AXES` (ep splitting dp_shard) with its flattened views."""
    from torch.distributed.device_mesh import init_device_mesh

    if dims.ep > 1:
        names = ("pp", "dp_replicate", "dp_shard_mod_ep", "ep", "cp", "tp")
        shape = (dims.pp, dims.dp_replicate, dims.dp_shard_mod_ep, dims.ep, dims.cp, dims.tp)
    else:
        names, shape = AXES, tuple(getattr(dims, a) for a in AXES)
    mesh = init_device_mesh(device_type, shape, mesh_dim_names=names)
    shard = ("dp_shard_mod_ep", "ep") if dims.ep > 1 else ("dp_shard",)
    if dims.ep > 1:
        mesh[shard]._flatten("dp_shard")
    mesh[("dp_replicate", *shard)]._flatten("dp")
    mesh[(*shard, "cp")]._flatten("dp_shard_cp")
    mesh[("dp_replicate", *shard, "cp")]._flatten("dp_cp")
    if dims.ep > 1 and dims.dp_replicate > 1 and dims.cp > 1:
        # the ranks an expert slice is replicated over (parallel._expert_mesh)
        mesh[("dp_replicate", "dp_shard_mod_ep")]._flatten(EXPERT_REPLICAS)
    return mesh

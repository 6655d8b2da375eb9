"""``mindvl train plan``: what each rank of a layout would hold, measured without a device or
a world.

Each planned rank runs in its own forked process that joins a fake process group of the
layout's world size (torch's ``fake`` backend: collectives are no-ops, as in torchtitan's
dry runs) and lays the stage's model out exactly as training does
(:func:`~mindvl.trainer.layout.lay_out`) on the meta device, so nothing is allocated; the
rank's parameter pieces are then counted. One rank per pipeline stage is planned by
default: the other ranks of a stage hold pieces of the same sizes (FSDP2, TP and EP shards
are even up to one row of padding).

Persistent training state per rank: fp32 weights (4 bytes per held parameter), fp32
gradients and AdamW's two moments (12 bytes per trainable one). Activations, FSDP2's
gathered layers and communication buffers come on top and are not estimated.
"""

from __future__ import annotations

import multiprocessing as mp

import torch

from mindvl.common.errors import UserError
from mindvl.trainer.device.mesh import AXES, resolve
from mindvl.trainer.model.config import MindVLConfig
from mindvl.trainer.stage_config import StageConfig

WEIGHT_BYTES, TRAINABLE_BYTES = 4, 12  # fp32 weights; fp32 gradients + AdamW's two moments


def plan_ranks(cfg: StageConfig, config: MindVLConfig, world: int, ranks=None) -> list[dict]:
    """One row per planned rank (default: the first rank of each pipeline stage)."""
    if ranks is None:  # pp is the outermost mesh axis (resolve: training's layout errors)
        pp = resolve(cfg.parallel, cfg.distributed, world).pp
        ranks = [k * (world // pp) for k in range(pp)]
    ctx = mp.get_context("fork")
    rows = []
    for rank in ranks:
        receive, send = ctx.Pipe(duplex=False)
        args = (cfg.model_dump_json(), config.model_dump_json(), world, rank, send)
        proc = ctx.Process(target=_plan_rank, args=args)
        proc.start()
        send.close()
        try:
            row = receive.recv()
        except EOFError:  # the child died before it answered (its traceback is above)
            proc.join()
            raise RuntimeError(f"planning rank {rank} failed (exit code {proc.exitcode})") from None
        proc.join()
        if "error" in row:
            raise UserError(row["error"])
        rows.append(row)
    return rows


def _plan_rank(cfg_json: str, config_json: str, world: int, rank: int, conn) -> None:
    import torch.distributed as dist
    from torch.testing._internal.distributed.fake_pg import FakeStore

    from mindvl.trainer.device.attention import apply_attention_backend
    from mindvl.trainer.device.materialize import build_on_meta
    from mindvl.trainer.layout import lay_out
    from mindvl.trainer.runtime import Runtime
    from mindvl.trainer.trainable import apply_trainable

    try:
        dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world)
        cfg = StageConfig.model_validate_json(cfg_json).model_copy(update={"compile": False})
        core = build_on_meta(MindVLConfig.model_validate_json(config_json))
        total = sum(p.numel() for p in core.parameters())
        apply_trainable(core, cfg.trainable)
        apply_attention_backend(core, "segments")
        rt = Runtime(rank=rank, world=world, local_rank=0, device=torch.device("cpu"))
        dims, _, model = lay_out(cfg, core, rt, None)
        held = trainable = 0
        for p in model.parameters():
            n = (p.to_local() if hasattr(p, "to_local") else p).numel()
            held += n
            trainable += n if p.requires_grad else 0
        state = held * WEIGHT_BYTES + trainable * TRAINABLE_BYTES
        coords = dims.coords(rank)
        layout = {a: getattr(dims, a) for a in ("pp", "dp_replicate", "dp_shard", "cp", "tp", "ep")}
        conn.send({"rank": rank, "coords": coords, "layout": layout, "params": held,
                   "trainable": trainable, "model_params": total, "state_bytes": state})  # fmt: skip
    except UserError as err:
        conn.send({"error": str(err)})
    finally:
        conn.close()


def describe(rows: list[dict], world: int) -> list[str]:
    """The plan as lines of text."""
    total = rows[0]["model_params"]
    degrees = " x ".join(f"{a} {n}" for a, n in rows[0]["layout"].items() if a != "ep")
    lines = [
        f"{world} ranks: {degrees} (ep {rows[0]['layout']['ep']} within dp_shard);"
        f" the model has {total:,} parameters"
    ]
    for row in rows:
        where = ", ".join(f"{a} {row['coords'][a]}" for a in AXES)
        lines.append(
            f"rank {row['rank']} ({where}): {row['params']:,} parameters"
            f" ({row['params'] / total:.2%} of the model), {row['trainable']:,} trainable;"
            f" weights + gradients + AdamW {row['state_bytes'] / 2**30:.2f} GiB"
        )
    return lines

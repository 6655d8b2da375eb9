"""Meta-device build and per-rank materialisation: the random init depends on the seed only
(not on the layout), and each rank loads exactly its slices of a model dir (FSDP2, FSDP2
with expert parallelism, TP=2, and EP=2 x TP=2 with FSDP2), giving storage only to them."""

from __future__ import annotations

import gc
import os

import pytest
import torch
import torch.multiprocessing as mp
from dist_helpers import (
    assert_fork_safe,
    assert_only_shards_materialised,
    free_port,
    log_materialisations,
)

from mindvl.common.errors import UserError
from mindvl.trainer.device.materialize import build_on_meta, materialise
from mindvl.trainer.model import MindVL
from mindvl.trainer.model.tiny import tiny_config

CPU = torch.device("cpu")


def _init(cfg, seed: int = 0, weights=None) -> MindVL:
    model = build_on_meta(cfg)
    materialise(model, build_on_meta(cfg), CPU, seed=seed, weights=weights)
    return model


def test_random_init_is_seeded_and_loading_is_exact(tmp_path):
    cfg = tiny_config(100, 5, llm_type="deepseek_v3")  # MLA, router bias buffer, experts
    a, b, c = _init(cfg), _init(cfg), _init(cfg, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    key = "llm.model.layers.0.self_attn.kv_a_proj_with_mqa.weight"
    assert not torch.equal(sa[key], sc[key])
    assert sa[key].std() == pytest.approx(0.02, rel=0.2)  # the LLM's initializer_range
    assert a.llm.lm_head.weight is a.llm.get_input_embeddings().weight  # still tied
    plain = MindVL.from_config(cfg)
    for name, buf in plain.named_buffers():  # rotary frequencies computed, not loaded
        assert torch.equal(buf, dict(a.named_buffers())[name]), name

    plain.save_pretrained(tmp_path / "m")
    loaded = _init(cfg, weights=tmp_path / "m").state_dict()
    ref = plain.state_dict()
    assert loaded.keys() == ref.keys() and all(torch.equal(loaded[k], ref[k]) for k in ref)
    other = tiny_config(100, 5, llm_type="qwen3")
    with pytest.raises(UserError, match="has shape"):
        _init(other.model_copy(update={"projector_hidden": 40}), weights=tmp_path / "m")


def _rank(rank: int, world: int, port: int, llm: str, ep: int, tp: int, src: str, out: str):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    from mindvl.trainer.device.mesh import build_mesh, resolve
    from mindvl.trainer.device.parallel import parallelize
    from mindvl.trainer.stage_config import ParallelSpec

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    cfg = tiny_config(100, 5, llm_type=llm)
    dims = resolve(ParallelSpec(ep=ep, tp=tp), None, world)
    mesh = build_mesh("cpu", dims)
    for name, weights in (("loaded", src), ("random", None)):

        def fill(model, weights=weights) -> None:
            materialise(model, build_on_meta(cfg), CPU, seed=0, weights=weights)

        model = parallelize(build_on_meta(cfg), dims, mesh, CPU, fill=fill)
        local = [p.to_local().numel() for p in model.parameters()]
        assert sum(local) < sum(p.numel() for p in model.parameters())  # only its shards
        opts = StateDictOptions(full_state_dict=True, cpu_offload=ep == 1)  # EP: every rank
        full = get_model_state_dict(model, options=opts)
        if ep > 1:  # expert slices: join them over ep to compare with the full tensors
            from mindvl.trainer.device.expert_parallel import expert_parameter_names

            group, first = mesh["ep"].get_group(), mesh["ep"].get_local_rank() == 0
            for key in expert_parameter_names(model):
                parts = [torch.empty_like(full[key]) for _ in range(ep)] if first else None
                dist.gather(full[key].contiguous(), parts, group=group, group_dst=0)
                if rank == 0:
                    full[key] = torch.cat(parts)
        if rank == 0:
            torch.save(full, os.path.join(out, f"{name}.pt"))
    dist.destroy_process_group()


@pytest.mark.parametrize(
    ("llm", "world", "ep", "tp"),
    [("qwen3", 2, 1, 1), ("qwen3_moe", 2, 2, 1), ("qwen3", 2, 1, 2), ("qwen3_moe", 4, 2, 2)],
)
def test_ranks_load_their_slices_and_init_like_one_process(
    tmp_path, monkeypatch, llm, world, ep, tp
):
    """FSDP2 over 2 ranks (dense, EP=2), TP=2 and EP=2 x TP=2 (4 ranks: FSDP2 x TP 2-D
    DTensors, expert slices): each rank gives storage only to its pieces, and they are the
    model dir's / the 1-process init's."""
    cfg = tiny_config(100, 5, llm_type=llm)
    plain = MindVL.from_config(cfg)
    plain.save_pretrained(tmp_path / "m")
    gc.collect()  # see dist_helpers.spawn
    assert_fork_safe()
    log_materialisations(monkeypatch, tmp_path / "to_empty.log")
    mp.start_processes(
        _rank, args=(world, free_port(), llm, ep, tp, str(tmp_path / "m"), str(tmp_path)),
        nprocs=world, start_method="spawn" if torch.cuda.is_available() else "fork",
    )  # fmt: skip
    assert_only_shards_materialised(tmp_path / "to_empty.log", world)
    single = _init(cfg).state_dict()
    for name, ref in (("loaded", plain.state_dict()), ("random", single)):
        got = torch.load(tmp_path / f"{name}.pt", weights_only=True)
        assert got.keys() == ref.keys(), name
        for k in ref:
            assert torch.equal(got[k], ref[k]), f"{name}: {k}"

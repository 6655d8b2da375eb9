"""Per-part learning rates: AdamW groups per part, one schedule over all, logged per part."""

from __future__ import annotations

import pytest
import torch

from mindvl.common.config import validate_data
from mindvl.common.errors import ConfigError
from mindvl.trainer.model import MindVL
from mindvl.trainer.model.freeze import set_trainable
from mindvl.trainer.model.tiny import pack_samples, random_image_sample, tiny_config
from mindvl.trainer.optimizer import current_lrs, lr_lambda, make_optimizer
from mindvl.trainer.stage_config import OptimizerSpec, ScheduleSpec, StageConfig
from mindvl.trainer.trainable import check_optimizer_covers


def _stage(**extra) -> StageConfig:
    data = {
        "name": "lr",
        "data": {"manifest": "unused"},
        "seq_len": 64,
        "tokens_per_step": 64,
        "steps": 1,
        "init": {"config": "tiny"},
        **extra,
    }
    return validate_data(data, StageConfig, "stage.yaml")


def test_groups_carry_part_rates_and_decay_split():
    model = MindVL(tiny_config(64, 5))
    spec = OptimizerSpec(lr=1e-3, lr_vision=1e-5, lr_projector=2e-4, weight_decay=0.1)
    opt = make_optimizer(model, spec)
    check_optimizer_covers(model, opt)
    got = {(g["part"], g["decay"]): (g["lr"], g["weight_decay"]) for g in opt.param_groups}
    assert got == {
        ("vision", True): (1e-5, 0.1), ("vision", False): (1e-5, 0.0),
        ("projector", True): (2e-4, 0.1), ("projector", False): (2e-4, 0.0),
        ("llm", True): (1e-3, 0.1), ("llm", False): (1e-3, 0.0),
    }  # fmt: skip
    for g in opt.param_groups:  # matrices decay, vectors (norms, biases) do not
        assert all((p.ndim >= 2) == g["decay"] for p in g["params"])
    # a frozen part has no group at all
    set_trainable(model, ["projector", "llm"])
    opt = make_optimizer(model, OptimizerSpec(lr=1e-3, lr_projector=2e-4))
    assert {g["part"] for g in opt.param_groups} == {"projector", "llm"}
    check_optimizer_covers(model, opt)


def test_schedule_scales_every_group_and_one_step_moves_each_part_by_its_rate():
    torch.manual_seed(0)
    model = MindVL(tiny_config(64, 5))
    # AdamW's first step moves a weight by lr * g / (|g| + eps): about lr where g is not tiny
    spec = OptimizerSpec(lr=1e-3, lr_vision=1e-5, lr_projector=1e-4, weight_decay=0.0)
    opt = make_optimizer(model, spec)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(ScheduleSpec(warmup_steps=4), 10))
    row = current_lrs(opt, spec)
    assert row == pytest.approx(
        {"lr": 1e-3 / 4, "lr_vision": 1e-5 / 4, "lr_projector": 1e-4 / 4, "lr_llm": 1e-3 / 4}
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    gen = torch.Generator().manual_seed(0)
    batch = pack_samples([random_image_sample(gen, 64, 5, 12)], 5)
    model(batch).loss_sum.backward()
    opt.step()
    sched.step()
    for part, rate in (("vision", 1e-5), ("projector", 1e-4), ("llm", 1e-3)):
        moved = max(
            float((p.detach() - before[n]).abs().max())
            for n, p in model.named_parameters()
            if n.startswith(part + ".")
        )
        assert moved == pytest.approx(rate / 4, rel=1e-2), part  # fp32 weight rounding
    row = current_lrs(opt, spec)  # warmup step 2 of 4: every rate x2, ratios kept
    assert row["lr_vision"] == pytest.approx(2e-5 / 4) and row["lr_llm"] == pytest.approx(2e-3 / 4)


def test_config_errors():
    assert _stage(optimizer={"lr_vision": 1e-5}).optimizer.lr_vision == 1e-5
    with pytest.raises(ConfigError, match="optimizer.lr_merger"):
        _stage(optimizer={"lr_merger": 1e-5})
    with pytest.raises(ConfigError, match="optimizer.lr_vision is set but vision is frozen"):
        _stage(optimizer={"lr_vision": 1e-5}, trainable=["projector", "llm"])
    _stage(optimizer={"lr_vision": 1e-5}, trainable=["all"])


def test_resume_refuses_another_group_layout(tmp_path):
    """Saved optimizer state keeps each group's part; a checkpoint of another layout (the
    two-group one written before per-part rates, or other trainable parts) is refused."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    from mindvl.common.errors import UserError
    from mindvl.trainer.optimizer import check_saved_groups
    from mindvl.trainer.state_files import load_state, save_state

    model = MindVL(tiny_config(64, 5))
    opt = make_optimizer(model, OptimizerSpec(lr_vision=1e-5))
    full = StateDictOptions(full_state_dict=True)
    save_state(get_optimizer_state_dict(model, opt, options=full), tmp_path, "optimizer")
    saved = load_state(tmp_path, "optimizer")["param_groups"]
    check_saved_groups(saved, opt.param_groups, "ckpt")  # same layout: accepted
    set_trainable(model, ["llm"])
    with pytest.raises(UserError, match="ckpt: its optimizer state has parameter groups"):
        check_saved_groups(saved, make_optimizer(model, OptimizerSpec()).param_groups, "ckpt")
    two_groups = [{"params": [], "weight_decay": 0.0}, {"params": [], "weight_decay": 0.0}]
    with pytest.raises(UserError, match=r"\(None, None\)"):
        check_saved_groups(two_groups, opt.param_groups, "ckpt")

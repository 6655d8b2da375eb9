"""MoE recipes: the paper's 671B-A37B shape builds on the meta device with the right
parameter counts, and the MoE stage configs load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mindvl.common.config import load_model
from mindvl.trainer.model import MindVL, MindVLConfig
from mindvl.trainer.model.moe import parameter_counts
from mindvl.trainer.model.tiny import tiny_config
from mindvl.trainer.stage_config import load_stage

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"


def test_paper_shape_counts_671b_total_and_37b_active_on_meta():
    config = load_model(PIPELINES / "models" / "mindvl-671b-a37b.yaml", MindVLConfig)
    with torch.device("meta"):
        model = MindVL(config)
    assert all(p.is_meta for p in model.parameters())  # nothing allocated
    total, active = parameter_counts(model, model.llm)
    llm_total, llm_active = parameter_counts(model.llm, model.llm)
    # DeepSeek-V3 without its multi-token-prediction module: 671B total, 37B activated
    assert llm_total / 1e9 == pytest.approx(671.0, abs=1.0)
    assert llm_active / 1e9 == pytest.approx(37.5, abs=1.0)
    vision = sum(p.numel() for p in model.vision.parameters())
    assert vision / 1e9 == pytest.approx(0.63, abs=0.02)  # Qwen2.5-ViT without its merger
    assert total - llm_total == active - llm_active  # tower and projector run for every token
    assert model.moe.layers == tuple(range(3, 61)) and model.moe.top_k == 8


def test_dense_model_is_all_active():
    model = MindVL(tiny_config(64, 5))
    total, active = parameter_counts(model, model.llm)
    assert total == active == sum(p.numel() for p in model.parameters())


def test_tiny_moe_active_count_is_exact():
    model = MindVL(tiny_config(64, 5, llm_type="qwen3_moe"))
    total, active = parameter_counts(model, model.llm)
    experts = sum(p.numel() for n, p in model.named_parameters() if ".mlp.experts." in n)
    assert total - active == experts // 2  # top-2 of 4: half the routed experts sit idle


def test_moe_stage_configs_load():
    stages = {
        p.stem: load_stage(p, {"shards": "s", "init": "i"})
        for p in (PIPELINES / "train").glob("moe_*.yaml")
    }
    assert set(stages) == {"moe_warmup", "moe_multitask", "moe_sft"}
    assert stages["moe_warmup"].moe.bias_update_rate == 0
    assert stages["moe_multitask"].moe.bias_update_rate == 1e-3
    demo = load_stage(PIPELINES / "demo" / "sft.yaml", {"shards": "s", "init": "i", "steps": "2",
                                                         "threads": "1"})  # fmt: skip
    assert demo.moe.bias_update_rate > 0

"""Building MindVL from local pretrained parts: a Qwen2.5-VL tower and a causal LM."""

from __future__ import annotations

import pytest
import torch

from mindvl.common.errors import UserError
from mindvl.trainer.model import MindVL
from mindvl.trainer.model.tiny import tiny_config


def test_from_parts_reuses_tower_and_llm_weights(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM, Qwen2_5_VLForConditionalGeneration

    cfg = tiny_config(64, 5)
    text = {k: v for k, v in cfg.llm.items() if k not in ("model_type", "head_dim")}
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "mrope_section": [1, 1, 2],
    }
    vl_cfg = AutoConfig.for_model("qwen2_5_vl", vision_config=cfg.vision, text_config=text)
    torch.manual_seed(0)
    vl = Qwen2_5_VLForConditionalGeneration(vl_cfg)
    vl.save_pretrained(tmp_path / "vl")
    llm = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg.llm))
    llm.save_pretrained(tmp_path / "llm")

    model = MindVL.from_parts(tmp_path / "vl", tmp_path / "llm", 48, 5, dtype=torch.float32)
    src = vl.model.visual.state_dict()
    got = model.vision.state_dict()
    assert set(got) == {k for k in src if not k.startswith("merger.")}
    for k, v in got.items():
        assert torch.equal(v, src[k]), k
    for k, v in model.llm.state_dict().items():
        assert torch.equal(v, llm.state_dict()[k]), k
    assert model.config.llm["model_type"] == "qwen3"

    with pytest.raises(UserError, match="no vision tower weights"):
        MindVL.from_parts(tmp_path / "llm", tmp_path / "llm", 48, 5)

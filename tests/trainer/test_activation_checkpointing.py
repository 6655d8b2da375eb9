"""Activation checkpointing per part: same losses and gradients, less memory kept for backward."""

from __future__ import annotations

import pytest
import torch
from dist_helpers import spawn, tiny_stage_fields

from mindvl.common.config import validate_data
from mindvl.common.errors import ConfigError
from mindvl.trainer.data.synth_shards import train_test_tokenizer, write_stage
from mindvl.trainer.device.activation_checkpoint import (
    apply_activation_checkpointing,
    live_bytes_after,
)
from mindvl.trainer.loop import run_stage
from mindvl.trainer.model import MindVL
from mindvl.trainer.model.tiny import pack_samples, random_image_sample, tiny_config
from mindvl.trainer.stage_config import StageConfig

WRAPPED = "_checkpoint_wrapped_module."


def _batch():
    gen = torch.Generator().manual_seed(0)
    return pack_samples([random_image_sample(gen, 64, 5, n) for n in (20, 7)], 5)


def _run(modes: dict[str, str], llm_type: str = "qwen3"):
    """Loss, gradients by plain name and bytes kept for backward of one forward+backward."""
    torch.manual_seed(0)
    model = MindVL(tiny_config(64, 5, llm_type)).train()
    apply_activation_checkpointing(model, modes)
    out, kept = live_bytes_after(lambda: model(_batch()))
    out.loss_sum.backward()
    grads = {n.replace(WRAPPED, ""): p.grad.clone() for n, p in model.named_parameters()}
    return float(out.loss_sum.detach()), grads, kept, model


@pytest.mark.parametrize("llm_type", ["qwen3", "qwen3_moe"])
def test_modes_keep_loss_and_gradients_and_save_memory(llm_type):
    loss, grads, kept, _ = _run({"vision": "none", "llm": "none"}, llm_type)
    kept_by_mode = {}
    for mode in ("full", "selective"):
        got, got_grads, kept_by_mode[mode], model = _run({"vision": mode, "llm": mode}, llm_type)
        assert got == loss
        assert got_grads.keys() == grads.keys()
        for name, g in grads.items():
            torch.testing.assert_close(got_grads[name], g, rtol=1e-6, atol=1e-7, msg=name)
        assert all(hasattr(b, "_checkpoint_wrapped_module") for b in model.vision.blocks)
        # checkpoints keep plain parameter names
        assert not any(WRAPPED in k for k in model.state_dict())
    # full keeps only block inputs; selective also keeps matmul/attention outputs
    assert kept_by_mode["full"] < kept_by_mode["selective"] < kept
    assert kept_by_mode["full"] < 0.7 * kept


def test_per_part_modes_and_errors():
    loss, grads, kept, _ = _run({"vision": "none", "llm": "none"})
    got, got_grads, got_kept, model = _run({"vision": "full", "llm": "none"})
    assert got == loss and got_kept < kept
    assert not any(hasattr(layer, "_checkpoint_wrapped_module") for layer in model.llm.model.layers)
    for name, g in grads.items():
        torch.testing.assert_close(got_grads[name], g, rtol=1e-6, atol=1e-7, msg=name)
    with pytest.raises(RuntimeError, match="vision block 0 is already wrapped"):
        apply_activation_checkpointing(model, {"vision": "selective"})
    with pytest.raises(ValueError, match="unknown mode 'some'"):
        apply_activation_checkpointing(model, {"llm": "some"})
    with pytest.raises(ValueError, match="unknown part 'projector'"):
        apply_activation_checkpointing(model, {"projector": "full"})


def _stage(manifest, **extra) -> StageConfig:
    fields = tiny_stage_fields(manifest, "ac", steps=2, **extra)
    return validate_data(fields, StageConfig, "stage.yaml")


def test_stage_config_spelling(tmp_path):
    cfg = _stage(tmp_path, activation_checkpointing="selective")
    assert cfg.activation_checkpointing.model_dump() == {"vision": "selective", "llm": "selective"}
    cfg = _stage(tmp_path, activation_checkpointing={"llm": "full"})
    assert cfg.activation_checkpointing.model_dump() == {"vision": "none", "llm": "full"}
    with pytest.raises(ConfigError, match="activation_checkpointing"):
        _stage(tmp_path, activation_checkpointing={"projector": "full"})
    with pytest.raises(ConfigError, match="activation_checkpointing"):
        _stage(tmp_path, activation_checkpointing="everything")


def test_fsdp_two_ranks_match_plain_run(tmp_path, monkeypatch):
    """FSDP2 over 2 gloo ranks with checkpointed blocks: the plain single-process losses
    and gradient norms (the norm covers every gradient of the model). Also the metrics the
    other knobs add: per-part learning rates, TFLOP/s, and MFU where a peak is given."""
    monkeypatch.delenv("MINDVL_PEAK_TFLOPS", raising=False)
    tok = train_test_tokenizer(tmp_path / "tok")
    write_stage(tmp_path / "stage", tok, n_samples=24, n_shards=2, long_tail=60)
    plain = run_stage(_stage(tmp_path / "stage"), tmp_path / "plain")
    cfg = _stage(
        tmp_path / "stage",
        distributed="fsdp",
        activation_checkpointing={"vision": "full", "llm": "selective"},
        peak_tflops=0.5,
    )
    rows = spawn(cfg, tmp_path / "fsdp", world=2)
    assert len(rows) == len(plain) == 2
    for a, b in zip(plain, rows, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5, abs=1e-6)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4, abs=1e-6)
        assert a["lr_vision"] == a["lr_projector"] == a["lr_llm"] == a["lr"]
        assert "mfu" not in a and a["tflops"] > 0  # no peak known for a CPU
        assert b["mfu"] == pytest.approx(b["tflops"] / 0.5)

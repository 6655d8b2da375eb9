"""The loop on a tiny model: stage YAML validation, trainable parts, loss normalisation."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mindvl.common.errors import ConfigError
from mindvl.trainer.data.synth_shards import train_test_tokenizer, write_stage
from mindvl.trainer.loop import run_stage
from mindvl.trainer.stage_config import load_stage

BASE = {
    "name": "tiny",
    "data": {"manifest": "${shards}", "streams": 2},
    "seq_len": 256,
    "tokens_per_step": 512,
    "steps": 3,
    "init": {"config": "tiny"},
    "optimizer": {"lr": 0.002},
    "schedule": {"warmup_steps": 1},
    "threads": 1,
    "device": "cpu",
    "packing": {"buffer_size": 16, "vit_patch_budget": 2048},
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("loop")
    tok = train_test_tokenizer(d / "tok")
    write_stage(d / "stage", tok, n_samples=64, n_shards=4, long_tail=60)
    return d / "stage"


def write_yaml(path, **overrides):
    data = json.loads(json.dumps(BASE))
    for k, v in overrides.items():
        data[k] = v
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_key_and_missing_var_name_the_field(tmp_path, shards):
    p = write_yaml(tmp_path / "s.yaml", optimizer={"lr": 0.1, "betaz": [0.9, 0.9]})
    with pytest.raises(ConfigError, match=r"optimizer\.betaz: unknown field \(allowed: lr, betas"):
        load_stage(p, {"shards": str(shards)})
    with pytest.raises(ConfigError, match=r"unknown variables \$\{shards\} \(in data\.manifest\)"):
        load_stage(write_yaml(tmp_path / "t.yaml"), {})
    with pytest.raises(ConfigError, match="multiple of seq_len"):
        load_stage(write_yaml(tmp_path / "u.yaml", tokens_per_step=300), {"shards": "x"})


def test_shipped_stage_configs_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "pipelines" / "train"
    names = {
        p.stem: load_stage(p, {"shards": "s", "init": "i", "out": "o"}) for p in root.glob("*.yaml")
    }
    assert {"warmup", "multitask", "sft"} <= set(names)
    assert names["warmup"].trainable == ["projector"]
    assert names["multitask"].trainable == ["all"]
    assert {c.precision for c in names.values()} == {"bf16"}


def test_warmup_trains_only_the_projector(tmp_path, shards, capsys):
    cfg = load_stage(
        write_yaml(tmp_path / "w.yaml", trainable=["projector"]), {"shards": str(shards)}
    )
    torch.manual_seed(0)
    rows = run_stage(cfg, tmp_path / "out")
    table = capsys.readouterr().out
    assert "projector" in table and "trainable" in table
    steps = [line for line in table.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in steps] == ["1/3", "2/3", "3/3"]
    assert all(" elapsed, ETA " in line for line in steps) and steps[-1].endswith("ETA 0:00")
    assert [r["step"] for r in rows] == [1, 2, 3]
    metrics = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [m["loss"] for m in metrics] == [r["loss"] for r in rows]
    for m in metrics:
        assert m["llm_tokens"] + m["padding"] * 2 * 256 == pytest.approx(512)
        assert 0 < m["loss_tokens"] <= m["llm_tokens"] and m["samples_per_pack"] >= 1
    first = load_file(tmp_path / "out" / "model" / "model.safetensors")  # step 3's weights
    # a second, fresh model from the same seed: only projector weights may differ
    cfg0 = cfg.model_copy(
        update={"steps": 1, "optimizer": cfg.optimizer.model_copy(update={"lr": 1e-12})}
    )
    run_stage(cfg0, tmp_path / "out0")
    start = load_file(tmp_path / "out0" / "model" / "model.safetensors")
    changed = {k.split(".")[0] for k in first if not torch.allclose(first[k], start[k], atol=1e-8)}
    assert changed == {"projector"}
    # the final model records where it came from (averaging checks lineage with it)
    from mindvl.trainer.provenance import checkpoint_id, read_provenance

    prov = read_provenance(tmp_path / "out" / "model")
    assert prov["id"] == checkpoint_id(tmp_path / "out" / "model") and prov["ancestors"] == []
    assert prov["stage"] == "tiny" and prov["trained"]["seq_len"] == 256
    # inference.json carries the image token rule the stage trained under
    from mindvl.common.manifest import RatioManifest
    from mindvl.trainer.model.checkpoint_io import read_inference

    rule = read_inference(tmp_path / "out" / "model").image_tokens
    assert rule == RatioManifest.load(shards).image_tokens


def test_cli_runs_a_stage_and_reports_config_errors_in_one_line(tmp_path, shards):
    from click.testing import CliRunner

    from mindvl.trainer.cli import train

    stage = write_yaml(tmp_path / "c.yaml", steps=None, epochs=0.05, checkpoint_every=1)
    out = tmp_path / "cli"
    args = ["run", str(stage), "--var", f"shards={shards}", "--out", str(out)]
    res = CliRunner().invoke(train, args)
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())
    assert run["steps"] == 1  # 0.05 epochs of the manifest's tokens at 512 tokens per step
    assert (out / "model" / "config.json").is_file()
    last = res.output.strip().splitlines()[-1]
    assert last.startswith("trained tiny in ") and f"model {out / 'model'}," in last
    bad = write_yaml(tmp_path / "bad.yaml", seq_len="long")
    res = CliRunner().invoke(train, ["run", str(bad), "--var", f"shards={shards}"])
    assert res.exit_code == 2
    assert "seq_len: Input should be a valid integer" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_bf16_precision_autocasts_and_keeps_fp32_weights(tmp_path, shards):
    fp32 = load_stage(write_yaml(tmp_path / "a.yaml"), {"shards": str(shards)})
    bf16 = load_stage(write_yaml(tmp_path / "b.yaml", precision="bf16"), {"shards": str(shards)})
    a, b = run_stage(fp32, tmp_path / "fp32"), run_stage(bf16, tmp_path / "bf16")
    assert [r["loss"] for r in b] != [r["loss"] for r in a]  # bf16 matmuls really ran
    for x, y in zip(a, b, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=2e-2)
        assert y["llm_tokens"] == x["llm_tokens"]
    weights = load_file(tmp_path / "bf16" / "model" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}
    with pytest.raises(ConfigError, match="precision"):
        load_stage(write_yaml(tmp_path / "c.yaml", precision="fp8"), {"shards": str(shards)})

"""MindVL on disk: ``config.json`` + ``model.safetensors`` or index + shards
(:mod:`~mindvl.trainer.model.weights_dir`), tokenizer, ``inference.json``.

One call reloads a checkpoint (:func:`load_mindvl`). Weights are written by safetensors'
``save_model``, which stores a tied input/output embedding once; loading re-ties it. Building from pretrained parts reads only local files (``local_files_only``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from mindvl.common.errors import UserError
from mindvl.trainer.model.config import (
    CONFIG_NAME,
    INFERENCE_NAME,
    MODEL_TYPE,
    WEIGHTS_NAME,
    InferenceConfig,
    MindVLConfig,
)
from mindvl.trainer.model.mindvl import MindVL, strip_merger

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
)


def _clean(config_dict: dict) -> dict:
    """A transformers config dict without runtime-only keys (attention choice, versions)."""
    drop = {"transformers_version", "architectures", "dtype", "torch_dtype"}
    return {k: v for k, v in config_dict.items() if not k.startswith("_") and k not in drop}


def current_config(model: MindVL) -> MindVLConfig:
    return model.config.model_copy(
        update={
            "vision": _clean(model.vision.config.to_dict()),
            "llm": _clean(model.llm.config.to_dict()),
            "dtype": str(model.dtype).removeprefix("torch."),
        }
    )


def save_mindvl(model: MindVL, path, tokenizer=None, inference: InferenceConfig | None = None):
    from safetensors.torch import save_model

    out = Path(path)
    write_model_meta(model, out, tokenizer, inference)
    save_model(model, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    default_mode(out / WEIGHTS_NAME)


def write_model_meta(model: MindVL, out: Path, tokenizer=None, inference=None) -> None:
    """Everything of a model dir but the weights: config, tokenizer, inference rule."""
    out.mkdir(parents=True, exist_ok=True)
    config = current_config(model)
    (out / CONFIG_NAME).write_text(json.dumps(config.model_dump(), indent=2, sort_keys=True))
    if tokenizer is not None:
        copy_tokenizer(tokenizer, out)
    if inference is not None or not (out / INFERENCE_NAME).exists():
        write_inference(out, inference or InferenceConfig())


def default_mode(*paths) -> None:
    """Give files the mode a plain ``open()`` would (0644 under umask 022): safetensors
    writes its files 0600, which other users of a shared checkpoint cannot read."""
    mask = os.umask(0)
    os.umask(mask)
    for p in paths:
        os.chmod(p, 0o666 & ~mask)


def copy_tokenizer(tokenizer, out: Path) -> None:
    """A HF tokenizer object, a tokenizer directory or a ``tokenizer.json`` file."""
    if hasattr(tokenizer, "save_pretrained"):
        tokenizer.save_pretrained(str(out))
        return
    src = Path(tokenizer)
    if src.is_file():
        shutil.copyfile(src, out / "tokenizer.json")
        return
    if not src.is_dir():
        raise UserError(f"tokenizer not found: {src}")
    for name in TOKENIZER_FILES:
        if (src / name).exists():
            shutil.copyfile(src / name, out / name)


def read_config(path) -> MindVLConfig:
    p = Path(path) / CONFIG_NAME
    if not p.exists():
        raise UserError(f"not a MindVL checkpoint (no {CONFIG_NAME}): {path}")
    data = json.loads(p.read_text())
    if data.get("model_type") != MODEL_TYPE:
        raise UserError(
            f"not a MindVL checkpoint (model_type {data.get('model_type')!r}): {path};"
            " make one with `mindvl model import` or `mindvl model assemble`"
        )
    return MindVLConfig.model_validate(data)


def load_mindvl(path, device=None, dtype=None) -> MindVL:
    from mindvl.trainer.model.weights_dir import load_weights, weight_map

    config = read_config(path)
    weight_map(path)  # a one-line error before building a model without weights
    model = MindVL(config)
    target = dtype if dtype is not None else getattr(torch, config.dtype)
    model.to(target)
    load_weights(model, path, device=str(device or "cpu"))
    if device is not None:
        model.to(device)
    return model


def read_inference(path) -> InferenceConfig:
    p = Path(path) / INFERENCE_NAME
    if not p.exists():
        return InferenceConfig()
    return InferenceConfig.model_validate_json(p.read_text())


def write_inference(path, inference: InferenceConfig) -> None:
    text = json.dumps(inference.model_dump(), indent=2, sort_keys=True)
    (Path(path) / INFERENCE_NAME).write_text(text)


def load_vision_tower(path):
    """The vision tower of a local Qwen2.5-VL checkpoint (weights under ``[model.]visual.``)."""
    from safetensors import safe_open
    from transformers import AutoConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel,
    )

    cfg = AutoConfig.from_pretrained(str(path), local_files_only=True)
    vision_cfg = getattr(cfg, "vision_config", None)
    if vision_cfg is None and "qwen2_5_vl" in str(getattr(cfg, "model_type", "")):
        vision_cfg = cfg  # a vision-only config
    if vision_cfg is None:
        raise UserError(f"no vision tower weights: {path} is not a Qwen2.5-VL checkpoint")
    tower = Qwen2_5_VisionTransformerPretrainedModel._from_config(vision_cfg)
    state = {}
    for file in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                for prefix in ("model.visual.", "visual."):
                    if key.startswith(prefix) and ".merger." not in key:
                        state[key[len(prefix) :]] = f.get_tensor(key)
    if not state:
        raise UserError(f"no vision tower weights (visual.*) in {path}")
    strip_merger(tower)
    missing, unexpected = tower.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(
            f"vision weights in {path} do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return tower


def build_from_parts(
    vision_path,
    llm_path,
    projector_hidden: int,
    image_pad_token_id: int,
    dtype: torch.dtype = torch.bfloat16,
) -> MindVL:
    """A new MindVL from a local Qwen2.5-VL checkpoint's tower and a local causal LM."""
    from transformers import AutoModelForCausalLM

    tower = load_vision_tower(vision_path)
    llm = AutoModelForCausalLM.from_pretrained(str(llm_path), local_files_only=True, dtype=dtype)
    if image_pad_token_id >= llm.get_input_embeddings().num_embeddings:
        raise UserError(f"image_pad_token_id {image_pad_token_id} is outside the LLM's vocabulary")
    config = MindVLConfig(
        vision=_clean(tower.config.to_dict()),
        llm=_clean(llm.config.to_dict()),
        projector_hidden=projector_hidden,
        image_pad_token_id=image_pad_token_id,
    )
    return MindVL(config, vision=tower, llm=llm).to(dtype)

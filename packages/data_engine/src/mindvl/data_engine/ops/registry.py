"""Operator names usable in a recipe's ``operators:`` list -> "module:Class" (loaded lazily)."""

from __future__ import annotations

import importlib
from typing import Any

from mindvl.common.config import validate_data
from mindvl.common.errors import ConfigError
from mindvl.data_engine.ops.base import OpContext, Operator

OPERATORS: dict[str, str] = {
    # one line per operator, e.g. "image_decode": "mindvl.data_engine.ops.image_decode:ImageDecode",
    "image_decode": "mindvl.data_engine.ops.image_decode:ImageDecode",
    "image_size": "mindvl.data_engine.ops.image_size:ImageSize",
    "aspect_ratio": "mindvl.data_engine.ops.aspect_ratio:AspectRatio",
    "blur": "mindvl.data_engine.ops.blur:Blur",
    "low_information": "mindvl.data_engine.ops.low_information:LowInformation",
    "image_format": "mindvl.data_engine.ops.image_format:ImageFormatFilter",
    "text_length": "mindvl.data_engine.ops.text_length:TextLength",
    "repetition": "mindvl.data_engine.ops.repetition:Repetition",
    "language_id": "mindvl.data_engine.ops.language_id:LanguageId",
    "quality": "mindvl.data_engine.ops.quality:Quality",
    "clip_score": "mindvl.data_engine.ops.clip_score:ClipScore",
}


def operator_class(name: str) -> type[Operator]:
    module, _, attr = OPERATORS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def build_operator(
    name: str, params: dict[str, Any], source: str, index: int, context: OpContext | None = None
) -> Operator:
    """Instantiate ``operators[index]`` of a recipe, naming the field on any error."""
    if name not in OPERATORS:
        raise ConfigError(
            f"{source}: operators[{index}].op: unknown operator {name!r} (allowed: {', '.join(sorted(OPERATORS))})"
        )
    cls = operator_class(name)
    parsed = validate_data(params, cls.Params, source, prefix=f"operators[{index}].params")
    return cls(parsed, context)

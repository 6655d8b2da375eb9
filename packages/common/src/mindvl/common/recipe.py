"""The recipe: a YAML description of one data build (one training stage's mixture).

Strings may use ``${name}`` variables, filled from ``mindvl data build --var name=value``;
relative paths are taken from the working directory. Unknown keys are errors and every
error names the file, the field path and what was allowed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from mindvl.common.config import StrictModel, read_yaml, validate_data
from mindvl.common.errors import ConfigError
from mindvl.common.tokens import ImageTokenRule

NAME = r"^[A-Za-z0-9_-]+$"
SOURCE_FORMATS = ("llava", "webdataset", "parquet", "folder")


class SourceSpec(StrictModel):
    name: str = Field(pattern=NAME)
    path: str = Field(description="local path, glob, or any URI that fsspec/pyarrow opens")
    format: Literal["llava", "webdataset", "parquet", "folder"]
    category: str = Field(pattern=NAME)
    license: str = "unknown"
    weight: float = Field(default=1.0, gt=0)
    options: dict[str, Any] = Field(default_factory=dict, description="reader-specific options")


class OperatorSpec(StrictModel):
    op: str = Field(description="registered operator name, e.g. image_size")
    params: dict[str, Any] = Field(default_factory=dict)


class NearDedupSpec(StrictModel):
    enabled: bool = True
    max_hamming: int = Field(default=10, ge=0, le=24)
    crop_only_beyond: int = Field(
        default=6,
        ge=0,
        le=24,
        description="pHash matches further apart than this are verified only when their "
        "sizes are those of a crop (a crop moves pHash most; resizes and re-encodes little); "
        "two icons of at most 64 px only beyond 10 bits, or this when wider",
    )
    min_information: float = Field(
        default=0.0, ge=0, description="images below this information score get exact dedup only"
    )
    verify: bool = Field(default=True, description="confirm candidate pairs with a second signal")
    index: Literal["auto", "exact", "sampled"] = Field(
        default="auto",
        description="pHash banding: exact (pigeonhole, every pair within max_hamming; its "
        "random band collisions grow as n^2: ~1e9 at 1e5 images and max_hamming 10), sampled "
        "(bit-sampling LSH, near-linear, recall sampled_recall; at max_hamming 10 it needs 133 "
        "tables at 1e5 and its 255-table cap at 1e6, so beyond ~1e6 images set max_hamming 6) "
        "or auto (exact while it stays under ~3e8 collisions, ~54k images at max_hamming 10; "
        "beyond, max_hamming narrows to crop_only_beyond: exact to ~217k images, then sampled)",
    )
    sampled_recall: float = Field(
        default=0.99, gt=0, lt=1, description="sampled index: recall of pairs at max_hamming"
    )
    crowded_bucket: int = Field(
        default=64,
        ge=0,
        description="m: a pHash band bucket with more than m(m-1)/2 pairs within max_hamming "
        "pairs only images also within detail_max_hamming in the detail hash or of one size "
        "(verify only; 0: never)",
    )
    detail_max_hamming: int = Field(default=8, ge=0, le=24)


class DedupSpec(StrictModel):
    exact: bool = True
    near: NearDedupSpec = Field(default_factory=NearDedupSpec)
    decontaminate: list[str] = Field(
        default_factory=list, description="eval-set corpora to keep out"
    )
    decontaminate_format: Literal["llava", "webdataset", "parquet", "folder"] = "llava"


class CaptionCategorySpec(StrictModel):
    prompt: str
    policy: Literal["replace", "add_turn", "keep_original"] = "replace"


class CaptionChecks(StrictModel):
    min_chars: int = Field(default=3, ge=0)
    max_chars: int = Field(default=1000, gt=0)
    languages: list[str] = Field(default_factory=list)
    max_repetition: float = Field(default=0.5, gt=0, le=1)


class CaptionSpec(StrictModel):
    enabled: bool = False
    backend: str = "hf"
    model: str | None = None
    categories: dict[str, CaptionCategorySpec] = Field(default_factory=dict)
    generation: dict[str, float | int | str | bool] = Field(
        default_factory=lambda: {"max_new_tokens": 32}
    )
    batch_size: int = Field(default=8, gt=0)
    concurrency: int = Field(default=1, gt=0)
    device: Literal["auto", "cpu", "cuda", "npu"] = "auto"
    checks: CaptionChecks = Field(default_factory=CaptionChecks)

    @model_validator(mode="after")
    def _need_model(self) -> CaptionSpec:
        if self.enabled and not self.model:
            raise ValueError("caption.model is required when captioning is enabled")
        return self


class MixtureSpec(StrictModel):
    unit: Literal["samples", "tokens"] = "samples"
    budget: int = Field(gt=0, description="total samples or tokens of the stage")
    targets: dict[str, float] = Field(description="category -> fraction; fractions sum to 1")
    source_targets: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="category -> source -> fraction within the category"
    )
    max_repeat: float = Field(default=1.0, ge=1.0)
    shortfall: Literal["fail", "rebalance"] = "fail"

    @model_validator(mode="after")
    def _sums(self) -> MixtureSpec:
        for label, fr in [
            ("targets", self.targets),
            *((f"source_targets.{c}", v) for c, v in self.source_targets.items()),
        ]:
            if any(v < 0 for v in fr.values()):
                raise ValueError(f"{label}: fractions must be >= 0")
            if abs(sum(fr.values()) - 1.0) > 1e-6:
                raise ValueError(f"{label}: fractions sum to {sum(fr.values()):.6f}, not 1")
        return self


class ShardSpec(StrictModel):
    max_samples: int = Field(default=1000, gt=0)
    max_bytes: int = Field(default=256 * 1024 * 1024, gt=0)


class Recipe(StrictModel):
    name: str = Field(pattern=NAME)
    stage: str = Field(pattern=NAME)
    seed: int = 0
    tokenizer: str = Field(description="path of a local Hugging Face tokenizer")
    image_tokens: ImageTokenRule = Field(default_factory=ImageTokenRule)
    sources: list[SourceSpec] = Field(min_length=1)
    operators: list[OperatorSpec] = Field(default_factory=list)
    dedup: DedupSpec = Field(default_factory=DedupSpec)
    caption: CaptionSpec = Field(default_factory=CaptionSpec)
    mixture: MixtureSpec | None = None
    shards: ShardSpec = Field(default_factory=ShardSpec)

    @model_validator(mode="after")
    def _cross(self) -> Recipe:
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique (repeated: {', '.join(dup)})")
        cats = {s.category for s in self.sources}
        if self.mixture is not None:
            unknown = sorted(set(self.mixture.targets) - cats)
            if unknown:
                raise ValueError(
                    f"mixture.targets names categories with no source: {', '.join(unknown)} (have: {', '.join(sorted(cats))})"
                )
            for cat, fr in self.mixture.source_targets.items():
                own = {s.name for s in self.sources if s.category == cat}
                bad = sorted(set(fr) - own)
                if bad:
                    raise ValueError(
                        f"mixture.source_targets.{cat} names sources not in that category: {', '.join(bad)}"
                    )
        return self

    def source(self, name: str) -> SourceSpec:
        return next(s for s in self.sources if s.name == name)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def substitute(data: Any, variables: dict[str, str], source: str, path: str = "") -> Any:
    """Replace ``${name}`` in every string; unknown variables are one error naming them all."""
    missing = _unknown_variables(data, variables, path)
    if missing:
        known = ", ".join(sorted(variables)) or "none given"
        names = ", ".join(f"${{{n}}} (in {', '.join(paths)})" for n, paths in missing.items())
        flags = " ".join(f"--var {n}=VALUE" for n in missing)
        raise ConfigError(f"{source}: unknown variables {names}; given: {known}; pass {flags}")
    return _fill(data, variables)


def _unknown_variables(data: Any, variables: dict[str, str], path: str) -> dict[str, list[str]]:
    """Each unknown variable name with the field paths that use it, in document order."""
    found: dict[str, list[str]] = {}

    def walk(node: Any, at: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{at}.{k}" if at else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{at}[{i}]")
        elif isinstance(node, str):
            for m in _VAR.finditer(node):
                if m.group(1) not in variables:
                    found.setdefault(m.group(1), []).append(at or "<top>")

    walk(data, path)
    return found


def _fill(data: Any, variables: dict[str, str]) -> Any:
    if isinstance(data, dict):
        return {k: _fill(v, variables) for k, v in data.items()}
    if isinstance(data, list):
        return [_fill(v, variables) for v in data]
    if isinstance(data, str):
        return _VAR.sub(lambda m: variables[m.group(1)], data)
    return data


def resolved_digest(text: str, variables: dict[str, str]) -> str:
    """sha256 of the recipe as built: the YAML with its ``--var`` values filled, as canonical
    JSON. Two builds of one file with different variables (a budget, a path) differ; a
    comment or a reformat does not change it."""
    import hashlib
    import json

    import yaml

    data = substitute(yaml.safe_load(text), dict(variables), "<recipe>")
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_variables(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``--var NAME=VALUE`` options as a mapping (shared by every command that loads configs)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--var expects NAME=VALUE, got {item!r}")
        out[key] = value
    return out


def load_recipe(path: str | Path, variables: dict[str, str] | None = None) -> Recipe:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    data = substitute(data, dict(variables or {}), str(path))
    return validate_data(data, Recipe, str(path))


def recipe_from_text(
    text: str, source: str = "<recipe>", variables: dict[str, str] | None = None
) -> Recipe:
    import yaml

    data = substitute(yaml.safe_load(text), dict(variables or {}), source)
    return validate_data(data, Recipe, source)

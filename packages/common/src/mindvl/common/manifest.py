"""The ratio manifest: what went into a stage's shards, what was dropped and why, and the
target vs achieved mixture by samples and by tokens.

Written by the data engine next to the shards (``manifest.json``), read by the trainer
(shard digests, image token rule) and by ``mindvl manifest show|verify|diff``. The JSON is
canonical (sorted keys, no timestamps) so the same build gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from mindvl.common.config import StrictModel, describe_errors
from mindvl.common.errors import UserError
from mindvl.common.tokens import ImageTokenRule

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
INDEX_NAME = "index.parquet"
REJECTS_NAME = "rejects.parquet"
# its columns, in order (all strings): one row per sample that is not in a shard
REJECTS_COLUMNS = ("key", "source", "stage", "op", "reason", "dup_group", "dup_survivor")


class RecipeRecord(StrictModel):
    text: str = Field(description="the recipe file verbatim")
    digest: str = Field(
        description="sha256 of the resolved recipe: the text with its variables filled, as"
        " canonical JSON (mindvl.common.recipe.resolved_digest)"
    )
    variables: dict[str, str] = Field(default_factory=dict)


class TokenizerRecord(StrictModel):
    path: str
    digest: str = Field(description="sha256 over the tokenizer's files")


class InputFile(StrictModel):
    source: str
    path: str
    size: int
    mtime_ns: int | None = None
    sha256: str | None = None


class FunnelEntry(StrictModel):
    """``count`` samples of ``source`` dropped at (stage, op) for ``reason``."""

    source: str
    stage: Literal["read", "filter", "dedup", "caption", "mix"]
    op: str
    reason: str
    count: int = Field(ge=0)


class SourceFunnel(StrictModel):
    source: str
    category: str
    input: int = Field(ge=0)
    kept: int = Field(ge=0)
    dropped: int = Field(ge=0)


class DedupStats(StrictModel):
    exact_groups: int = 0
    exact_dropped: int = 0
    near_groups: int = 0
    near_dropped: int = 0
    near_candidate_pairs: int = 0
    near_rejected_by_verify: int = 0
    near_index: str = Field(default="", description="the pHash banding used, e.g. exact: 7 bands")
    near_crowded_buckets: int = Field(
        default=0, description="band buckets paired by the detail hash (recipe crowded_bucket)"
    )
    low_information_exact_only: int = 0
    decontaminated: int = 0


class CategoryMix(StrictModel):
    category: str
    available_samples: int
    available_tokens: int
    target_fraction: float
    selected_unique: int = Field(description="distinct samples selected")
    repeats: int = Field(description="extra copies added by upsampling")
    samples: int
    image_tokens: int
    text_tokens: int
    achieved_fraction_samples: float
    achieved_fraction_tokens: float


class MixtureRecord(StrictModel):
    unit: Literal["samples", "tokens"]
    budget: int
    max_repeat: float
    shortfall: Literal["fail", "rebalance"]
    rebalanced: bool = False
    categories: list[CategoryMix]


class ShardRecord(StrictModel):
    name: str
    bytes: int
    samples: int
    sha256: str


class RatioManifest(StrictModel):
    schema_version: int = SCHEMA_VERSION
    name: str
    stage: str
    code_version: str = Field(
        description="'<package version>+src.<source digest>[.git.<describe>]' of the build code"
    )
    seed: int
    recipe: RecipeRecord
    tokenizer: TokenizerRecord
    image_tokens: ImageTokenRule
    inputs: list[InputFile]
    sources: list[SourceFunnel]
    funnel: list[FunnelEntry]
    dedup: DedupStats
    mixture: MixtureRecord
    shards: list[ShardRecord]
    total_samples: int
    total_image_tokens: int
    total_text_tokens: int
    selected_keys_digest: str = Field(
        description="sha256 of the selected keys, newline-joined, in shard order"
    )
    index: str = INDEX_NAME
    rejects: str = REJECTS_NAME

    def to_json_bytes(self) -> bytes:
        data = self.model_dump(mode="json")
        return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode(
            "utf-8"
        )

    def save(self, path: str | Path) -> Path:
        """Write atomically (temp file + rename)."""
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(self.to_json_bytes())
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> RatioManifest:
        p = Path(path)
        if p.is_dir():
            p = p / MANIFEST_NAME
        if not p.is_file():
            raise UserError(f"manifest not found: {p}")
        try:
            data: Any = json.loads(p.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"{p}: not a JSON manifest ({err})") from None
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise UserError(
                f"{p}: manifest schema_version {version!r} is not supported (this mindvl reads {SCHEMA_VERSION})"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise UserError(
                f"{p}: invalid manifest: " + "; ".join(describe_errors(err, cls))
            ) from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_shards(manifest: RatioManifest, shard_dir: str | Path) -> list[str]:
    """Problems with the shards next to a manifest: missing, mismatched or extra tar files
    (any ``*.tar`` there that the manifest does not list: a reader globbing the dir would
    read it)."""
    d = Path(shard_dir)
    problems = []
    listed = {s.name for s in manifest.shards}
    for shard in manifest.shards:
        p = d / shard.name
        if not p.is_file():
            problems.append(f"missing shard {shard.name}")
        elif p.stat().st_size != shard.bytes or sha256_file(p) != shard.sha256:
            problems.append(f"mismatched shard {shard.name} (sha256 differs from the manifest)")
    for p in sorted(d.glob("*.tar")):
        if p.name not in listed:
            problems.append(f"extra shard {p.name} (not in the manifest)")
    return problems

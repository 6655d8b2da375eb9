"""The stage config: one YAML file per training stage (warmup, multitask, sft).

Strings may use ``${name}`` variables filled from ``mindvl train run --var name=value``
(same rules as recipes); unknown keys are errors that name the file and the field path.
A stage names its shards (a data-engine build directory with ``manifest.json``), the pack
size, the global token budget per optimizer step, AdamW and a warmup+cosine schedule, the
length of the run, where the weights come from, which parts train, and how to checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mindvl.common.config import StrictModel, read_yaml, validate_data
from mindvl.common.errors import ConfigError
from mindvl.common.recipe import parse_variables, substitute

PART_NAMES = ("vision", "projector", "llm")


class DataSpec(StrictModel):
    manifest: str = Field(description="build directory holding manifest.json and the shards")
    tokenizer: str | None = Field(default=None, description="default: the manifest's tokenizer")
    streams: int | None = Field(
        default=None, gt=0, description="logical data streams (default world*workers)"
    )
    num_workers: int = Field(default=0, ge=0)
    verify: bool = Field(default=True, description="check shard sha256 against the manifest first")


class PackingSpec(StrictModel):
    buffer_size: int = Field(default=128, gt=0)
    max_wait: int = Field(default=64, gt=0)
    vit_patch_budget: int = Field(default=16384, gt=0, description="14px patches per pack")


class OptimizerSpec(StrictModel):
    lr: float = Field(default=1e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(default=1e-8, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    grad_clip: float | None = Field(default=1.0, gt=0)
    lr_vision: float | None = Field(default=None, gt=0, description="vision tower (None = lr)")
    lr_projector: float | None = Field(default=None, gt=0, description="projector (None = lr)")
    lr_llm: float | None = Field(default=None, gt=0, description="LLM (None = lr)")


class ScheduleSpec(StrictModel):
    warmup_steps: int = Field(default=0, ge=0)
    min_lr_ratio: float = Field(
        default=0.1, ge=0, le=1, description="cosine floor as a fraction of lr"
    )


class MoESpec(StrictModel):
    """Router balancing for mixture-of-experts LLMs (ignored for dense ones)."""

    aux_loss_coef: float | None = Field(
        default=None,
        ge=0,
        description="weight of the Switch/GShard balancing loss (default: the LLM config's"
        " router_aux_loss_coef, 0 where it has none, e.g. deepseek_v3)",
    )
    z_loss_coef: float = Field(default=0.0, ge=0, description="weight of the router z-loss")
    bias_update_rate: float = Field(
        default=0.0,
        ge=0,
        description="aux-loss-free balancing (routers with e_score_correction_bias): after"
        " each step bias += rate * sign(mean load - load); 0 = off",
    )


CheckpointMode = Literal["none", "full", "selective"]


class ActivationCheckpointSpec(StrictModel):
    """Per part: recompute nothing, whole blocks, or all but matmul/attention outputs in
    backward (see trainer/device/activation_checkpoint.py)."""

    vision: CheckpointMode = "none"
    llm: CheckpointMode = "none"


class ParallelSpec(StrictModel):
    """Degrees of the training DeviceMesh (see trainer/device/mesh.py); product = world size."""

    dp_replicate: int = Field(default=1, description="data-parallel replicas (DDP/HSDP)")
    dp_shard: int = Field(
        default=-1, description="FSDP2 shard ranks; -1 takes the ranks the others leave"
    )
    tp: int = Field(default=1, description="tensor parallelism (+ sequence parallelism)")
    cp: int = Field(default=1, description="context parallelism over packed rows")
    pp: int = Field(default=1, description="pipeline stages")
    pp_schedule: Literal[
        "1F1B",
        "GPipe",
        "Interleaved1F1B",
        "LoopedBFS",
        "InterleavedZeroBubble",
        "ZBVZeroBubble",
        "DualPipeV",
    ] = Field(
        default="1F1B",
        description="torch.distributed.pipelining schedule (pp > 1); Interleaved1F1B,"
        " LoopedBFS and InterleavedZeroBubble need pp_stages_per_rank >= 2, ZBVZeroBubble"
        " and DualPipeV exactly 2 (V-shaped: rank r holds stages r and 2 x pp - 1 - r)",
    )
    pp_stages_per_rank: int = Field(
        default=1, ge=1, description="pipeline stages each pp rank holds (virtual stages)"
    )
    pp_layers: list[int] | None = Field(
        default=None,
        description="LLM decoder layers per pipeline stage, pp x pp_stages_per_rank entries"
        " (default: an even split, the remainder on the later stages)",
    )
    ep: int = Field(
        default=1,
        gt=0,
        description="expert parallelism: ranks the routed experts of each MoE layer are split"
        " over, borrowed from dp_shard (divides dp_shard and the expert count)",
    )

    @model_validator(mode="after")
    def _pipeline_keys_need_pp(self) -> ParallelSpec:
        if self.pp == 1 and (self.pp_stages_per_rank != 1 or self.pp_layers is not None):
            raise ValueError("pp_stages_per_rank and pp_layers need pp > 1")
        return self


class InitSpec(StrictModel):
    checkpoint: str | None = Field(
        default=None, description="saved model dir (previous stage output)"
    )
    config: str | dict[str, Any] | None = Field(
        default=None,
        description="MindVLConfig (file or mapping), or a preset: 'tiny' (tests), 'small' (demo),"
        " 'tiny_qwen3_moe', 'tiny_deepseek_v3' (MoE tests), 'small_moe' (MoE demo)",
    )

    @model_validator(mode="after")
    def _one(self) -> InitSpec:
        if (self.checkpoint is None) == (self.config is None):
            raise ValueError("set exactly one of init.checkpoint and init.config")
        return self


class StageConfig(StrictModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    data: DataSpec
    seq_len: int = Field(gt=0, description="LLM tokens per packed row")
    tokens_per_step: int = Field(gt=0, description="global LLM token budget per optimizer step")
    steps: int | None = Field(default=None, gt=0)
    epochs: float | None = Field(default=None, gt=0)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    init: InitSpec
    trainable: list[str] = Field(default_factory=lambda: ["all"], description="'all' or parts")
    packing: PackingSpec = Field(default_factory=PackingSpec)
    moe: MoESpec = Field(default_factory=MoESpec)
    checkpoint_every: int = Field(default=0, ge=0, description="steps; 0 = only at the end")
    keep_checkpoints: int = Field(default=2, gt=0)
    checkpoint_async: bool = Field(
        default=False,
        description="write checkpoint shards in a background thread (dcp.async_save) while"
        " training goes on; committed at the next checkpoint or the end",
    )
    seed: int = 0
    device: Literal["auto", "cpu", "cuda", "npu"] = "auto"
    distributed: Literal["none", "ddp", "fsdp"] | None = Field(
        default=None,
        description="old spelling of the layout (none: one process; ddp; fsdp: FSDP2 over all"
        " ranks); use parallel: instead, not both",
    )
    parallel: ParallelSpec = Field(default_factory=ParallelSpec)
    precision: Literal["fp32", "bf16"] = Field(
        default="fp32",
        description="bf16: matmuls and attention in bfloat16 (autocast; with fsdp, FSDP2's"
        " compute dtype); weights, optimizer state, gradient reduction and the loss stay fp32",
    )
    activation_checkpointing: ActivationCheckpointSpec = Field(
        default_factory=ActivationCheckpointSpec,
        description="none | full | selective, for all parts or per part ({vision: .., llm: ..})",
    )
    compile: bool = Field(
        default=False, description="torch.compile each vision block and decoder layer"
    )
    peak_tflops: float | None = Field(
        default=None,
        gt=0,
        description="peak dense TFLOP/s of one device for MFU (default: $MINDVL_PEAK_TFLOPS,"
        " else the known-accelerator table)",
    )
    threads: int | None = Field(default=None, gt=0, description="torch CPU threads")
    log_every: int = Field(default=1, gt=0)
    tensorboard: bool = False

    @field_validator("activation_checkpointing", mode="before")
    @classmethod
    def _one_mode_for_all(cls, value):
        if isinstance(value, str):  # a plain mode applies to every part
            return {"vision": value, "llm": value}
        return value

    @model_validator(mode="after")
    def _check(self) -> StageConfig:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("set exactly one of steps and epochs")
        if self.tokens_per_step % self.seq_len:
            raise ValueError(
                f"tokens_per_step ({self.tokens_per_step}) must be a multiple of seq_len ({self.seq_len})"
            )
        bad = [t for t in self.trainable if t not in ("all", *PART_NAMES)]
        if bad:
            raise ValueError(
                f"trainable: unknown part(s) {bad} (allowed: all, {', '.join(PART_NAMES)})"
            )
        frozen = [p for p in PART_NAMES if "all" not in self.trainable and p not in self.trainable]
        for part in frozen:
            if getattr(self.optimizer, f"lr_{part}") is not None:
                raise ValueError(
                    f"optimizer.lr_{part} is set but {part} is frozen (trainable: "
                    f"{self.trainable}); remove it or train {part}"
                )
        return self

    def micro_batches(self, dp: int) -> int:
        """Packed rows per data-parallel rank per step (gradient accumulation)."""
        rows = self.tokens_per_step // self.seq_len
        if rows % dp:
            raise ConfigError(
                f"tokens_per_step/seq_len = {rows} rows per step do not split over {dp}"
                " data-parallel ranks"
            )
        return rows // dp

    def total_steps(self, total_tokens: int) -> int:
        """Steps of the run: ``steps``, or ``epochs`` x the manifest's tokens / step budget."""
        if self.steps is not None:
            return self.steps
        return max(1, round(self.epochs * total_tokens / self.tokens_per_step))


parse_vars = parse_variables  # the shared --var parser


def load_stage(path: str | Path, variables: dict[str, str] | None = None) -> StageConfig:
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    data = substitute(data, dict(variables or {}), str(path))
    return validate_data(data, StageConfig, str(path))

"""Per-step observability: ``metrics.jsonl`` (one JSON object per step), console, TensorBoard.

Each row: step, loss (token mean over the global batch), lr (the shared rate under the
schedule) and ``lr_<part>`` per trainable part, tokens/s (real LLM tokens, all ranks),
padding fraction, LLM vs ViT tokens (ViT = 14px patches), samples per pack, grad norm,
seconds per step, ``tflops`` (model TFLOP/s per device, :mod:`mindvl.trainer.flops`) and
``mfu`` (``tflops`` over the device's peak, only where a peak is known). MoE runs add the loss parts (``ce_loss``, ``aux_loss``,
``z_loss``; ``loss`` is then their weighted sum) and, per MoE layer ``L``, the tokens routed
to each expert as ``experts_lL_min``, ``experts_lL_max`` and ``experts_lL_cv`` (coefficient
of variation; 0 = perfectly balanced). The console line adds the elapsed time and an ETA
from the mean step time of this run (a resumed run counts from its first new step).
TensorBoard is written only when the stage asks for it
and ``torch.utils.tensorboard`` imports.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from mindvl.common.progress import duration, eta


class MetricsWriter:
    def __init__(
        self, out: Path, enabled: bool, tensorboard: bool = False, truncate_after: int | None = None
    ) -> None:
        """``truncate_after``: on resume, drop rows of steps after the checkpoint (they rerun)."""
        self.enabled = enabled
        self.start = time.monotonic()
        self.first_step: int | None = None  # the step before this run's first logged one
        self.tb = None
        self.file = None
        if not enabled:
            return
        out.mkdir(parents=True, exist_ok=True)
        path = out / "metrics.jsonl"
        if truncate_after is not None and path.exists():
            keep = [
                x for x in path.read_text().splitlines() if json.loads(x)["step"] <= truncate_after
            ]
            path.write_text("".join(x + "\n" for x in keep))
        self.file = open(out / "metrics.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                print("tensorboard is not installed; writing metrics.jsonl only", file=sys.stderr)

    def log(self, row: dict, total_steps: int) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(row, sort_keys=True) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in row.items():
                if isinstance(v, int | float) and k != "step":
                    self.tb.add_scalar(k, v, row["step"])
        if self.first_step is None:
            self.first_step = row["step"] - 1
        elapsed = time.monotonic() - self.start
        left = eta(row["step"] - self.first_step, total_steps - self.first_step, elapsed)
        print(
            f"step {row['step']}/{total_steps} loss {row['loss']:.4f} lr {row['lr']:.2e} "
            f"tok/s {row['tokens_per_s']:.0f} pad {row['padding']:.1%} "
            f"samples/pack {row['samples_per_pack']:.1f}"
            + (f" aux {row['aux_loss']:.4f}" if "aux_loss" in row else "")
            + (f" mfu {row['mfu']:.1%}" if "mfu" in row else "")
            + f" | {duration(elapsed)} elapsed, ETA {duration(left)}",
            flush=True,
        )

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.tb is not None:
            self.tb.close()

"""``mindvl model assemble|import|export`` and ``mindvl generate``: checkpoints in and out of
Hugging Face form, and a quick look at what a checkpoint says about an image."""

from __future__ import annotations

from pathlib import Path

import click

from mindvl.common.errors import UserError
from mindvl.common.lazy_group import LazyGroup

DTYPES = ("float32", "bfloat16", "float16")


def _dtype(name: str):
    import torch

    return getattr(torch, name)


@click.group(
    cls=LazyGroup,
    lazy={
        "assemble": "mindvl.trainer.model_cli:assemble_command",
        "import": "mindvl.trainer.model_cli:import_command",
        "export": "mindvl.trainer.model_cli:export_command",
    },
)
def model() -> None:
    """Hugging Face checkpoints in (assemble, import) and out (export)."""


@click.command("assemble")
@click.option("--vision", "vision", required=True, type=click.Path(path_type=Path, exists=True),
              help="local Qwen2.5-VL checkpoint: its vision tower is used")  # fmt: skip
@click.option("--llm", "llm", required=True, type=click.Path(path_type=Path, exists=True),
              help="local causal LM checkpoint (dense or MoE) with its tokenizer")  # fmt: skip
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path))
@click.option("--projector-hidden", type=click.IntRange(min=1), default=None,
              help="projector width (default: 4 x vision hidden)")  # fmt: skip
@click.option("--dtype", type=click.Choice(DTYPES), default="bfloat16", show_default=True)
def assemble_command(
    vision: Path, llm: Path, out: Path, projector_hidden: int | None, dtype: str
) -> None:
    """A new MindVL from a vision tower, a causal LM and a fresh projector."""
    from mindvl.trainer.model.hf_import import assemble

    m = assemble(vision, llm, out, projector_hidden, _dtype(dtype))
    click.echo(f"assembled {m.config.llm['model_type']} LLM + vision tower -> {out}")


@click.command("import")
@click.argument("checkpoint", type=click.Path(path_type=Path, exists=True))
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path))
@click.option("--dtype", type=click.Choice(DTYPES), default="bfloat16", show_default=True)
def import_command(checkpoint: Path, out: Path, dtype: str) -> None:
    """A Qwen2.5-VL CHECKPOINT as a MindVL (its merger becomes the projector)."""
    from mindvl.trainer.model.hf_import import import_qwen2_5_vl

    import_qwen2_5_vl(checkpoint, out, _dtype(dtype))
    click.echo(f"imported {checkpoint} -> {out}")


@click.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path, exists=True))
@click.option("--to", "target", type=click.Choice(["hf"]), required=True)
@click.option("-o", "--out", required=True, type=click.Path(path_type=Path))
def export_command(checkpoint: Path, target: str, out: Path) -> None:
    """CHECKPOINT as a transformers checkpoint with processor and chat template."""
    from mindvl.trainer.model.hf_export import export_hf

    kind = export_hf(checkpoint, out)
    how = (
        "Qwen2_5_VLForConditionalGeneration"
        if kind == "qwen2_5_vl"
        else "AutoModelForImageTextToText after `import mindvl.trainer.model`"
    )
    click.echo(f"exported {checkpoint} -> {out} ({kind}; load with {how} and AutoProcessor)")


@click.command("generate")
@click.argument("checkpoint", type=click.Path(path_type=Path, exists=True))
@click.option("--image", "images", multiple=True, required=True,
              type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="an image file; repeat for several (one answer each)")  # fmt: skip
@click.option("--prompt", default="", help="the question; empty: a caption")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None,
              help="default: the checkpoint's inference.json")  # fmt: skip
@click.option("--device", default="auto", show_default=True, help="auto | npu | cuda | cpu")
def generate_command(
    checkpoint: Path, images: tuple[Path, ...], prompt: str, max_new_tokens: int | None, device: str
) -> None:
    """Greedy answers of CHECKPOINT to PROMPT about each --image."""
    from mindvl.common.text_tokens import TextTokenizer
    from mindvl.trainer.device.select import select_device
    from mindvl.trainer.model import MindVL
    from mindvl.trainer.model.checkpoint_io import read_inference
    from mindvl.trainer.model.generate import generate

    inference = read_inference(checkpoint)
    try:
        tokenizer = TextTokenizer.from_path(checkpoint)
    except UserError as err:
        raise UserError(f"{checkpoint}: no usable tokenizer ({err})") from None
    model = MindVL.from_pretrained(checkpoint, device=select_device(device).device()).eval()
    blobs = [p.read_bytes() for p in images]
    answers = generate(
        model,
        tokenizer,
        blobs,
        [prompt] * len(blobs),
        inference.image_tokens,
        {"max_new_tokens": max_new_tokens or inference.max_new_tokens},
    )
    for path, answer in zip(images, answers, strict=True):
        click.echo(f"{path}: {answer}" if len(images) > 1 else answer)

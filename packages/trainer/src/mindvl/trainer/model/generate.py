"""Greedy generation for (image, prompt) pairs: evaluation and the caption backend use it.

A non-empty prompt is asked as one user turn (``<image>\\n{prompt}``) followed by the
assistant header, exactly as conversations are rendered for training; an empty prompt
uses the caption rendering (image, then the caption is generated). Image features are
scattered into the ``<|image_pad|>`` slots, rows are left-padded and batched through
transformers' ``generate`` with ``inputs_embeds`` and a KV cache. The LLM runs on plain
SDPA while generating (no packing there), whatever the training attention backend is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch

from mindvl.common.chat import (
    END_OF_TEXT,
    IM_END,
    IM_START,
    Piece,
    render_caption,
    render_conversation,
)
from mindvl.common.sample import IMAGE_PLACEHOLDER, Turn
from mindvl.common.tokens import ImageTokenRule
from mindvl.trainer.model.image_processing import preprocess_images

DEFAULT_GENERATION: dict[str, Any] = {"max_new_tokens": 32, "do_sample": False}


def prompt_ids(tokenizer, prompt: str, image_tokens: int) -> list[int]:
    """Token ids of the rendered prompt with ``image_tokens`` image pads, ready to continue."""
    if prompt:
        pieces = render_conversation([Turn(role="user", content=f"{IMAGE_PLACEHOLDER}\n{prompt}")])
        pieces = [*pieces, Piece(text=f"{IM_START}assistant\n")]
    else:
        pieces = [p for p in render_caption("", True) if p.text != END_OF_TEXT]
    ids: list[int] = []
    for piece in pieces:
        if piece.image is not None:
            ids += [tokenizer.image_pad_id] * image_tokens
        else:
            ids += tokenizer.encode(piece.text)
    return ids


@contextlib.contextmanager
def plain_llm_attention(model) -> Iterator[None]:
    config = model.llm.config
    saved = config._attn_implementation
    config._attn_implementation = "sdpa"
    try:
        yield
    finally:
        config._attn_implementation = saved


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    images: list,
    prompts: list[str],
    rule: ImageTokenRule,
    generation: dict[str, Any] | None = None,
) -> list[str]:
    """One decoded answer per (image, prompt) pair, in order (one image per pair)."""
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
    if not images:
        return []
    device = model.projector.fc1.weight.device
    pixels, grid = preprocess_images(images, rule)
    feats = model.image_features(pixels.to(device), grid.to(device))
    counts = (grid.prod(-1) // model.merge_unit).tolist()
    embed = model.llm.get_input_embeddings()
    rows = []
    for prompt, image_feats in zip(prompts, feats.split(counts), strict=True):
        ids = torch.tensor(prompt_ids(tokenizer, prompt, image_feats.shape[0]), device=device)
        row = embed(ids)
        row[ids == tokenizer.image_pad_id] = image_feats.to(row.dtype)
        rows.append(row)
    width = max(r.shape[0] for r in rows)
    pad = embed(torch.tensor([tokenizer.pad_id], device=device))[0]
    inputs = torch.stack([torch.cat([pad.expand(width - len(r), -1), r]) for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    stop = [tokenizer.hf.convert_tokens_to_ids(t) for t in (IM_END, END_OF_TEXT)]
    params = {**DEFAULT_GENERATION, **(generation or {})}
    with plain_llm_attention(model):
        out = model.llm.generate(
            inputs_embeds=inputs,
            attention_mask=mask,
            eos_token_id=stop,
            pad_token_id=tokenizer.pad_id,
            **params,
        )
    return tokenizer.hf.batch_decode(out, skip_special_tokens=True)

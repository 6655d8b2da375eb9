"""The data engine's model operators on a GPU: runs where CUDA is visible, skipped elsewhere.

``clip_score`` on CUDA (fp32) gives the CPU's scores; the ``hf`` caption backend loads in
bf16 on the GPU and captions deterministically. Both use tiny random models built here.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from clip_helpers import save_tiny_clip
from PIL import Image

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def picture(seed: int, size: tuple[int, int]) -> Image.Image:
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr)


def test_clip_scores_on_cuda_match_cpu(tmp_path):
    from mindvl.data_engine.ops.clip_score import ClipScorer

    save_tiny_clip(tmp_path)
    images = [picture(i, (48 + 8 * i, 40)) for i in range(4)]
    texts = ["a red cat on a mat", "a blue dog", "snow", "a mat in the snow"]
    cpu = ClipScorer(str(tmp_path), "cpu").scores(images, texts)
    gpu_scorer = ClipScorer(str(tmp_path), "cuda")
    assert next(gpu_scorer.model.parameters()).device.type == "cuda"
    gpu = gpu_scorer.scores(images, texts)
    assert len(set(cpu)) == 4  # different pairs score differently
    assert gpu == pytest.approx(cpu, abs=2e-3)


def test_hf_caption_backend_in_bf16_on_cuda(tmp_path):
    from mindvl.data_engine.caption.hf_backend import HFCaptionBackend
    from mindvl.data_engine.caption.tiny_model import build_tiny_qwen2vl

    backend = HFCaptionBackend(str(build_tiny_qwen2vl(tmp_path / "tiny-qwen2vl")), "cuda")
    p = next(backend.model.parameters())
    assert (p.device.type, p.dtype) == ("cuda", torch.bfloat16)
    images = []
    for i, size in enumerate([(56, 56), (112, 84), (60, 40)]):
        buf = io.BytesIO()
        picture(i, size).save(buf, "PNG")
        images.append(buf.getvalue())
    prompts = ["Describe the image.", "Describe.", "What is shown here, in detail?"]
    gen = {"max_new_tokens": 6}
    out = backend.generate(images, prompts, gen)
    assert len(out) == 3 and all(isinstance(t, str) for t in out) and any(out)
    assert backend.generate(images, prompts, gen) == out  # greedy: the same again

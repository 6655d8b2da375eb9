"""clip_score mechanics with a tiny random CLIP saved locally (no weights downloaded)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mindvl.common.errors import UserError
from mindvl.common.tokenizer_train import train_bpe_tokenizer
from mindvl.data_engine.ops.registry import build_operator
from mindvl.data_engine.record import Candidate


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import torch
    import transformers
    from transformers import CLIPConfig, CLIPModel

    out = tmp_path_factory.mktemp("clip")
    tok_dir = train_bpe_tokenizer(["a red cat on a mat", "a blue dog in the snow"] * 20, 300, out)
    tok = transformers.AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 37,
            "num_hidden_layers": 1, "num_attention_heads": 2, "max_position_embeddings": 24,
            # eos id 2 selects CLIP's legacy pooling (at the highest token id): this
            # tokenizer appends no end token, so eos-position pooling would read token 0
            "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": tok.pad_token_id,
        },
        vision_config={
            "image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
            "num_hidden_layers": 1, "num_attention_heads": 2,
        },
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    CLIPModel(config).save_pretrained(str(out))
    processor_cls = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)
    processor_cls(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    ).save_pretrained(str(out))
    return out


def png(seed: int, size=(48, 40)) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def cand(caption: str, *images: bytes) -> Candidate:
    return Candidate(
        key="k", source="s", category="c", raw_id="r", caption=caption, images=list(images)
    )


def test_scores_threshold_and_min_over_images(tiny_clip) -> None:
    keep_all = build_operator("clip_score", {"model": str(tiny_clip), "min_score": -1.0}, "r", 0)
    assert keep_all.uses_actor
    one, two = cand("a red cat on a mat", png(1)), cand("a red cat on a mat", png(2))
    assert keep_all(one) is None and keep_all(two) is None
    s1, s2 = one.meta["clip_score"], two.meta["clip_score"]
    assert -1.0 <= s1 <= 1.0 and s1 != s2
    again = cand("a red cat on a mat", png(1))
    keep_all(again)
    assert again.meta["clip_score"] == pytest.approx(s1, abs=1e-5)  # deterministic
    both = cand("a red cat on a mat", png(1), png(2))
    keep_all(both)
    assert both.meta["clip_score"] == pytest.approx(min(s1, s2), abs=1e-5)
    other_text = cand("a blue dog in the snow", png(1))
    keep_all(other_text)
    assert other_text.meta["clip_score"] != pytest.approx(s1, abs=1e-6)
    # threshold between the two scores keeps exactly the higher one
    mid = (s1 + s2) / 2
    split = build_operator("clip_score", {"model": str(tiny_clip), "min_score": mid}, "r", 0)
    reasons = [split(cand("a red cat on a mat", png(i))) for i in (1, 2)]
    assert sorted(reasons, key=str) == sorted([None, "low_clip_score"], key=str)
    assert split(cand("text only")) is None
    assert split(cand("broken", b"")) == "empty_image"


def test_resources_and_errors(tmp_path, tiny_clip) -> None:
    gpu = build_operator("clip_score", {"model": str(tiny_clip), "num_gpus": 1}, "r", 0)
    assert gpu.resources == {"num_cpus": 1, "num_gpus": 1}
    npu = build_operator("clip_score", {"model": str(tiny_clip), "npus": 1}, "r", 0)
    assert npu.resources == {"num_cpus": 1, "resources": {"NPU": 1}}
    with pytest.raises(UserError, match="clip_score: model directory not found: ") as err:
        build_operator("clip_score", {"model": str(tmp_path / "nope")}, "r", 0)
    assert "\n" not in err.value.format_message()
    empty = build_operator("clip_score", {"model": str(tmp_path), "min_score": 0}, "r", 0)
    with pytest.raises(UserError, match="cannot load a CLIP model"):
        empty(cand("a cat", png(1)))

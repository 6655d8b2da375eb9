"""clip_score mechanics with a tiny random CLIP saved locally (no weights downloaded)."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from clip_helpers import save_tiny_clip
from PIL import Image

from mindvl.common.errors import UserError
from mindvl.data_engine.ops.registry import build_operator
from mindvl.data_engine.record import Candidate


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip"))


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


def test_scores_the_answer_not_the_question(tiny_clip) -> None:
    op = build_operator("clip_score", {"model": str(tiny_clip), "min_score": -1.0}, "r", 0)
    ref = cand("a red cat on a mat", png(1))
    op(ref)
    chat = Candidate(
        key="k",
        source="s",
        category="c",
        raw_id="r",
        images=[png(1)],
        conversation=[
            {"role": "user", "content": "<image>\nDescribe the image."},
            {"role": "assistant", "content": "a red cat on a mat"},
        ],
    )
    op(chat)
    assert chat.meta["clip_score"] == pytest.approx(ref.meta["clip_score"], abs=1e-5)
    by_user = build_operator("clip_score", {"model": str(tiny_clip), "judge": "user"}, "r", 0)
    no_question = cand("a red cat on a mat", png(1))
    assert by_user(no_question) is None and "clip_score" not in no_question.meta


@pytest.mark.parametrize("what", ["clip_score", "hf"])
def test_model_operators_without_torch_say_how_to_install_it(monkeypatch, what):
    from mindvl.data_engine.caption.hf_backend import HFCaptionBackend
    from mindvl.data_engine.ops.clip_score import ClipScorer

    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(
        UserError,
        match=r"needs torch, not installed here: pip install 'mindvl-data-engine\[models\]'",
    ):
        if what == "clip_score":
            ClipScorer("/nowhere", "cpu")
        else:
            HFCaptionBackend("/nowhere")

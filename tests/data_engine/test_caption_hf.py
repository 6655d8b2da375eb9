"""The ``hf`` backend with a real tiny random-initialised Qwen2-VL, in process and on Ray.

Captions of a random model are noise; what is asserted is mechanics: batched generation
with left padding equals one-by-one generation, the weights digest, the cache (a second
run makes no model calls), and the actor-pool stage over candidate rows.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from mindvl.common.caption_backend import backend_class
from mindvl.common.recipe import CaptionSpec
from mindvl.common.sample import CaptionProvenance
from mindvl.data_engine.caption import PROVENANCE_META, CaptionRunner, caption_dataset
from mindvl.data_engine.caption.cache import CACHE_DIR, CaptionCache
from mindvl.data_engine.caption.hf_backend import HFCaptionBackend
from mindvl.data_engine.caption.tiny_model import build_tiny_qwen2vl
from mindvl.data_engine.record import Candidate, ImageRecord

GEN = {"max_new_tokens": 6}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2vl(tmp_path_factory.mktemp("tiny") / "tiny-qwen2vl")


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> HFCaptionBackend:
    return backend_class("hf")(str(model_dir), "cpu")


def png(i: int, size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (40 * i % 256, 90, 200 - 30 * i % 200)).save(buf, "PNG")
    return buf.getvalue()


SIZES = [(56, 56), (112, 84), (60, 40), (140, 112)]  # different token counts -> real padding


def candidates() -> list[Candidate]:
    out = [
        Candidate(key=f"k{i}", source="src", category="caption", raw_id=str(i),
                  images=[png(i, s)], caption=f"original {i}")
        for i, s in enumerate(SIZES)
    ]  # fmt: skip
    other = Candidate(key="o", source="src", category="ocr", raw_id="o", images=[png(9, (56, 56))])
    gone = Candidate(
        key="d", source="src", category="caption", raw_id="d", images=[png(8, (56, 56))]
    )
    gone.drop("filter", "image_size", "too_small")
    return [*out, other, gone]


def spec(model_dir: Path, batch_size: int = 4, concurrency: int = 1) -> CaptionSpec:
    return CaptionSpec(
        enabled=True,
        model=str(model_dir),
        categories={"caption": {"prompt": "Describe the image.", "policy": "replace"}},
        generation=GEN,
        batch_size=batch_size,
        concurrency=concurrency,
        device="cpu",
        checks={"min_chars": 0, "max_repetition": 1.0},
    )


def test_batched_generation_matches_one_by_one(backend: HFCaptionBackend) -> None:
    images = [png(i, s) for i, s in enumerate(SIZES)]
    prompts = ["Describe the image.", "Describe.", "What is shown here, in detail?", "Hi"]
    batched = backend.generate(images, prompts, GEN)
    single = [backend.generate([im], [p], GEN)[0] for im, p in zip(images, prompts, strict=True)]
    assert batched == single
    assert len(batched) == 4 and any(batched)


def test_weights_digest_covers_the_safetensors(backend: HFCaptionBackend, model_dir: Path) -> None:
    (weights,) = sorted(model_dir.glob("*.safetensors"))
    expected = hashlib.sha256(weights.name.encode() + b"\x00" + weights.read_bytes()).hexdigest()
    assert backend.weights_digest == expected
    assert backend.model_id == "tiny-qwen2vl"


def test_runner_second_run_makes_no_model_calls(
    backend: HFCaptionBackend, model_dir: Path, tmp_path: Path
) -> None:
    calls: list[int] = []
    real = backend.generate

    class Counting:  # the real backend, with its generate calls counted
        model_id, weights_digest = backend.model_id, backend.weights_digest

        def generate(self, images, prompts, generation):
            calls.append(len(images))
            return real(images, prompts, generation)

    first = candidates()
    CaptionRunner(spec(model_dir, batch_size=3), Counting(), CaptionCache(tmp_path)).run(first)
    assert calls == [3, 1]
    calls.clear()
    second = candidates()
    CaptionRunner(spec(model_dir, batch_size=3), Counting(), CaptionCache(tmp_path)).run(second)
    assert calls == []
    assert [c.caption for c in second] == [c.caption for c in first]
    p = CaptionProvenance.model_validate_json(second[0].meta[PROVENANCE_META])
    assert p.original == "original 0" and p.weights_digest == backend.weights_digest


def test_a_corrupt_image_costs_only_its_own_caption(
    backend: HFCaptionBackend, model_dir: Path
) -> None:
    cands = candidates()[:4]
    cands[2].images = [ImageRecord(b"not an image at all")]
    CaptionRunner(spec(model_dir, batch_size=4), backend).run(cands)
    assert cands[2].caption == "original 2"
    assert cands[2].meta == {"caption_error": "error:UnidentifiedImageError"}
    assert all(PROVENANCE_META in c.meta for i, c in enumerate(cands) if i != 2)


def cache_lines(work: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in (work / CACHE_DIR).glob("part-*.jsonl"))


def test_ray_actor_pool_end_to_end(
    ray_local, backend: HFCaptionBackend, model_dir: Path, tmp_path: Path
) -> None:
    ray = ray_local
    work = tmp_path / "work"
    expected = candidates()
    CaptionRunner(spec(model_dir), backend).run(expected)  # in process, no cache
    # an earlier build captioned k0 and k1 into this work dir's cache
    CaptionRunner(spec(model_dir), backend, CaptionCache(work / CACHE_DIR)).run(candidates()[:2])
    assert cache_lines(work) == 2
    rows = [c.to_row() for c in candidates()]
    ds = caption_dataset(ray.data.from_items(rows), spec(model_dir, batch_size=2), work)
    out = {r["key"]: Candidate.from_row(r) for r in ds.take_all()}
    assert set(out) == {"k0", "k1", "k2", "k3", "o", "d"}
    assert cache_lines(work) == 4  # the actor generated only the two misses
    for c in expected[:4]:
        got = out[c.key]
        assert got.caption == c.caption  # greedy decoding: same text in the actor
        assert got.meta == c.meta
        p = CaptionProvenance.model_validate_json(got.meta[PROVENANCE_META])
        assert (p.model_id, p.weights_digest) == ("tiny-qwen2vl", backend.weights_digest)
        assert p.original == f"original {c.key[1:]}" and p.policy == "replace"
    assert out["o"].meta == {} and out["o"].caption is None
    assert out["d"].drop_reason == "too_small" and out["d"].meta == {}

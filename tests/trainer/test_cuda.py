"""The trainer's CUDA paths: runs where a GPU is visible, skipped elsewhere (CI has none).

What the CPU suite cannot show: the SDPA block-mask backend on a GPU, bf16 autocast, DDP and
FSDP2 wrapping over NCCL, a whole stage on ``device: cuda`` (checkpoint, resume, reload on
CPU) and the ``mindvl`` caption backend in bf16 on the GPU. fp32 comparisons with the CPU
turn TF32 off, so CUDA and CPU compute the same function up to float32 rounding.
"""

from __future__ import annotations

import copy
import json
import shutil
import socket

import pytest
import torch
from dist_helpers import tiny_stage_fields

from mindvl.trainer.batch import PackedBatch
from mindvl.trainer.device.attention import apply_attention_backend, default_backend_name
from mindvl.trainer.model import MindVL
from mindvl.trainer.model.tiny import pack_samples, random_image_sample, tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

VOCAB, PAD = 64, 5
CUDA = torch.device("cuda", 0)


@pytest.fixture
def no_tf32():
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def pack(samples: list[dict]) -> PackedBatch:
    return pack_samples(samples, PAD)


def samples(seed: int = 0, n: int = 3) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    return [random_image_sample(gen, VOCAB, PAD, 12 + 9 * i) for i in range(n)]


def model(seed: int = 0) -> MindVL:
    torch.manual_seed(seed)
    return MindVL(tiny_config(VOCAB, PAD)).train()


def loss_and_grads(m, batch: PackedBatch, autocast: bool = False):
    m.zero_grad(set_to_none=True)
    with torch.autocast("cuda", torch.bfloat16, enabled=autocast):
        loss = m(batch).loss_sum
    loss.backward()
    grads = {}
    for n, p in m.named_parameters():
        g = p.grad.full_tensor() if hasattr(p.grad, "full_tensor") else p.grad  # FSDP2 DTensor
        grads[n.removeprefix("module.")] = g.detach().float().cpu()
    return float(loss.detach()), grads


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def test_packed_step_on_cuda_matches_cpu(no_tf32):
    cpu = model()
    gpu = copy.deepcopy(cpu).to(CUDA)
    assert default_backend_name(CUDA) in ("segments", "flash")
    apply_attention_backend(gpu, "segments")
    batch = pack(samples())
    loss_cpu, grads_cpu = loss_and_grads(cpu, batch)
    loss_gpu, grads_gpu = loss_and_grads(gpu, batch.to(CUDA))
    assert loss_gpu == pytest.approx(loss_cpu, rel=1e-5)
    for n, g in grads_cpu.items():
        assert rel(grads_gpu[n], g) < 1e-4, n
    # per-segment attention keeps samples apart on the GPU: packed = the sum of one-by-one
    alone = sum(float(gpu(pack([s]).to(CUDA)).loss_sum.detach()) for s in samples())
    assert loss_gpu == pytest.approx(alone, rel=1e-5)


def test_bf16_autocast_on_cuda_is_close_to_fp32(no_tf32):
    m = model().to(CUDA)
    batch = pack(samples(1)).to(CUDA)
    loss32, grads32 = loss_and_grads(m, batch)
    loss16, grads16 = loss_and_grads(m, batch, autocast=True)
    assert loss16 != loss32  # bf16 really ran
    assert loss16 == pytest.approx(loss32, rel=2e-2)
    assert all(p.dtype == torch.float32 for p in m.parameters())  # master weights stay fp32
    for n, g in grads32.items():
        assert torch.isfinite(grads16[n]).all(), n
        assert rel(grads16[n], g) < 0.1, n


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nccl_group():
    import torch.distributed as dist

    dist.init_process_group(
        "nccl", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1,
        device_id=CUDA,
    )  # fmt: skip
    yield dist
    dist.destroy_process_group()


@pytest.mark.parametrize(
    ("strategy", "dtype"), [("ddp", "fp32"), ("fsdp", "fp32"), ("fsdp", "bf16")]
)
def test_ddp_and_fsdp2_over_nccl_match_the_plain_model(no_tf32, nccl_group, strategy, dtype):
    from mindvl.trainer.device.mesh import build_mesh, resolve
    from mindvl.trainer.device.parallel import parallelize
    from mindvl.trainer.stage_config import ParallelSpec

    assert nccl_group.get_backend() == "nccl"
    batch = pack(samples(2)).to(CUDA)
    plain = model(3).to(CUDA)
    loss_ref, grads_ref = loss_and_grads(plain, batch)
    dims = resolve(ParallelSpec(), strategy, 1)
    wrapped = parallelize(model(3).to(CUDA), dims, build_mesh("cuda", dims), CUDA, dtype)
    loss, grads = loss_and_grads(wrapped, batch)
    assert grads.keys() == grads_ref.keys()
    tol = 1e-5 if dtype == "fp32" else 2e-2
    assert loss == pytest.approx(loss_ref, rel=tol)
    for n, g in grads_ref.items():
        assert rel(grads[n], g) < (1e-4 if dtype == "fp32" else 0.1), n


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    from mindvl.trainer.data.synth_shards import train_test_tokenizer, write_stage

    d = tmp_path_factory.mktemp("cuda_stage")
    tok = train_test_tokenizer(d / "tok")
    write_stage(d / "stage", tok, n_samples=48, n_shards=4, long_tail=60)
    return d / "stage"


def stage_config(shards, **update):
    from mindvl.trainer.stage_config import StageConfig

    fields = tiny_stage_fields(shards, "cuda", threads=2, device="cuda", checkpoint_every=2)
    cfg = StageConfig.model_validate(fields)
    return cfg.model_copy(update=update)


def test_stage_on_cuda_matches_cpu_resumes_and_reloads(tmp_path, stage, no_tf32):
    from safetensors.torch import load_file

    from mindvl.trainer.loop import run_stage

    cpu = run_stage(stage_config(stage, device="cpu"), tmp_path / "cpu")
    gpu = run_stage(stage_config(stage), tmp_path / "gpu")
    for a, b in zip(cpu, gpu, strict=True):
        assert (b["llm_tokens"], b["loss_tokens"]) == (a["llm_tokens"], a["loss_tokens"])
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    assert gpu[0]["loss"] != pytest.approx(gpu[-1]["loss"], abs=1e-3)  # it trains
    half = run_stage(stage_config(stage, precision="bf16"), tmp_path / "bf16")
    assert [r["loss"] for r in half] != [r["loss"] for r in gpu]
    for a, b in zip(gpu, half, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=2e-2)

    # resume from step 2 on the GPU: step 3 repeats (optimizer state, loader, RNG)
    shutil.rmtree(tmp_path / "gpu" / "checkpoints" / "step-00000003")
    again = run_stage(stage_config(stage), tmp_path / "gpu", resume=True)
    assert again[-1]["step"] == 3
    assert again[-1]["loss"] == pytest.approx(gpu[2]["loss"], rel=1e-6)
    assert again[-1]["grad_norm"] == pytest.approx(gpu[2]["grad_norm"], rel=1e-5)
    rows = [json.loads(x) for x in (tmp_path / "gpu" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]

    # the saved model is a plain fp32 checkpoint that loads on the CPU
    weights = load_file(tmp_path / "bf16" / "model" / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.float32}
    reloaded = MindVL.from_pretrained(tmp_path / "gpu" / "model", device="cpu")
    assert next(reloaded.parameters()).device.type == "cpu"


def test_caption_backend_in_bf16_on_cuda(tmp_path):
    import io

    import numpy as np
    from PIL import Image

    from mindvl.common.text_tokens import TextTokenizer
    from mindvl.common.tokenizer_train import train_bpe_tokenizer
    from mindvl.common.tokens import ImageTokenRule
    from mindvl.trainer.caption_backend import MindVLCaptionBackend
    from mindvl.trainer.model import InferenceConfig

    tok_dir = train_bpe_tokenizer(["a red circle", "a blue square"] * 30, 280, tmp_path / "tok")
    tok = TextTokenizer.from_path(tok_dir)
    torch.manual_seed(0)
    rule = ImageTokenRule(min_pixels=4 * 28 * 28, max_pixels=9 * 28 * 28)
    ckpt = tmp_path / "tiny-mindvl"
    MindVL(tiny_config(len(tok.hf), tok.image_pad_id)).save_pretrained(
        ckpt, tokenizer=tok_dir, inference=InferenceConfig(image_tokens=rule)
    )

    def png(w: int, h: int, seed: int) -> bytes:
        rng = np.random.default_rng(seed)
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, "PNG")
        return buf.getvalue()

    backend = MindVLCaptionBackend(str(ckpt), "cuda")
    p = next(backend.model.parameters())
    assert (p.device.type, p.dtype) == ("cuda", torch.bfloat16)
    images = [png(80, 50, 1), png(30, 90, 2), png(80, 50, 1)]
    prompts = ["Describe the image.", "", "Describe the image."]
    out = backend.generate(images, prompts, {"max_new_tokens": 4})
    assert len(out) == 3 and all(isinstance(t, str) for t in out)
    assert out[0] == out[2]
    assert backend.generate(images, prompts, {"max_new_tokens": 4}) == out

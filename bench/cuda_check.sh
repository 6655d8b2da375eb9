#!/usr/bin/env bash
# CUDA checks and the trainer benchmark on one GPU, in one go (results: docs/BENCHMARKS.md).
#
# Made for a GPU machine with no package registry whose python3 already has torch and the
# common scientific stack: the project's other pure-Python/abi3 dependencies travel as
# wheels in .whl/ (pip download --no-deps --only-binary=:all: --python-version 3.12 ...:
# transformers, tokenizers, pydantic, pydantic-core, annotated-types, typing-inspection,
# typing-extensions, webdataset, braceexpand) and the project itself
# is used from packages/*/src. With the project's own environment instead, run
#   uv run pytest tests/trainer/test_cuda.py tests/data_engine/test_cuda_models.py
#   uv run python bench/trainer.py --device cuda [--precision bf16] --wide 2048
# Writes env.txt, pytest.txt and trainer_cuda_{fp32,bf16}.json under $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/cuda-check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:packages/common/src:packages/data_engine/src:packages/trainer/src
fi
export PYTHONUNBUFFERED=1
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import sys, torch, transformers; print(sys.version.split()[0], torch.__version__, transformers.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/env.txt"

timeout 240 python3 -m pytest -q -p no:cacheprovider \
    tests/trainer/test_cuda.py tests/data_engine/test_cuda_models.py \
    tests/trainer/test_model_device.py tests/trainer/test_loop_stages.py \
    tests/trainer/test_loop_distributed.py 2>&1 | tee "$OUT/pytest.txt"

for precision in fp32 bf16; do
    extra=""; [ "$precision" = fp32 ] && extra="--loader-workers 0,1,2,4"
    timeout 200 python3 bench/trainer.py --device cuda --precision "$precision" --wide 2048 $extra \
        --threads 8 --out "$OUT/trainer_cuda_$precision.json" >"$OUT/bench_$precision.log" 2>&1 \
        || { echo "bench $precision failed:"; tail -20 "$OUT/bench_$precision.log"; }
done
python3 - "$OUT" <<'EOF'
import json, sys
from pathlib import Path
for p in sorted(Path(sys.argv[1]).glob("trainer_cuda_*.json")):
    r = json.loads(p.read_text())
    for name, m in r["models"].items():
        print(p.stem, name, "packed", m["packed_tokens_per_s"], "padded", m["padded_tokens_per_s"],
              "x", m["speedup_vs_padded"], "mfu", m["mfu_proxy"], "ceiling %.3g" % r["matmul_ceiling_flops_per_s"])
    if "loader_workers_samples_per_s" in r:
        print(p.stem, "loader samples/s by workers", r["loader_workers_samples_per_s"])
EOF

#!/usr/bin/env bash
# Device check for the GPU knn backends (issue 2), ready for one call of the device tool:
#   run(command="bash bench/gpu_check.sh", timeout_s=560)
# Builds fe_fast with the CUDA module (pip install -e . with FE_FAST_CUDA=1), runs the GPU knn
# tests (compiled Triton and CUDA on CUDA tensors, the CUDA module checks, the interpreter tests),
# the ops-level knn/chamfer tests (they include the cuda backend when a device is present), and
# the GPU benchmark (Triton vs CUDA vs torch.cdist+min). Logs and tables go to $OUT
# (default ./gpu-out): env.txt build.log tests_gpu.log tests_ops.log bench.log bench.json
# bench_table.md. Exit status: non-zero if the build or any test step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
status=0
step() { echo "== $* ($(date +%T))"; }

step env
{
  nvidia-smi || true
  nvcc --version || true
  "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__); print(torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).multi_processor_count, 'SMs')"
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

step build
# Only the present GPU's architecture (faster); the CPU-side build compiles sm_80 and sm_90.
ARCH=$("$PY" -c "import torch; p = torch.cuda.get_device_capability(); print(f'{p[0]}{p[1]}')" 2>/dev/null || echo 90)
if ! FE_FAST_CUDA=1 FE_FAST_CUDA_ARCHS=${FE_FAST_CUDA_ARCHS:-$ARCH} \
    "$PY" -m pip install --no-build-isolation --no-deps -e . >"$OUT/build.log" 2>&1; then
  echo "BUILD FAILED"; tail -60 "$OUT/build.log"; exit 1
fi
"$PY" -c "from fe_fast import _C_cuda; print('fe_fast._C_cuda devices:', _C_cuda.device_count())" || exit 1

step "GPU knn tests (compiled Triton, CUDA)"
TRITON_INTERPRET=0 timeout 240 "$PY" -m pytest tests/kernels/test_knn_gpu.py \
  tests/kernels/test_knn_cuda_build.py -p no:xdist -q -rs --durations=10 2>&1 | tee "$OUT/tests_gpu.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

step "ops knn/chamfer tests + Triton interpreter tests"
TRITON_INTERPRET=1 timeout 180 "$PY" -m pytest tests/ops/test_knn.py tests/ops/test_chamfer.py \
  tests/kernels/test_knn_triton.py -n 8 -q -rs 2>&1 | tee "$OUT/tests_ops.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

step "GPU benchmark"
rm -f "$OUT/bench_table.md"
TRITON_INTERPRET=0 FE_FAST_BENCH_TABLE="$OUT/bench_table.md" timeout 200 "$PY" -m pytest \
  bench/bench_knn_gpu.py -p no:xdist -p no:cacheprovider --benchmark-only -s -q \
  --benchmark-json="$OUT/bench.json" --benchmark-columns=median,min,max,rounds 2>&1 | tee "$OUT/bench.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

step done
cat "$OUT/bench_table.md" 2>/dev/null
exit $status

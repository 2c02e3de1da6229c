#!/usr/bin/env bash
# One-shot device check (issues 2, 3, 6, 7), ready for one call of the device tool. Prepare here:
#   git archive HEAD > .gpudata/src.tar    # the committed tree, not files others are editing
#   python bench/bench_houv.py --pairs 32 --methods --pairs-dir .gpudata/pairs   # needs Open3D
# then run(command="mkdir /tmp/src && tar xf .gpudata/src.tar -C /tmp/src && cp -r .gpudata /tmp/src/
#              && cd /tmp/src && OUT=$OUT bash bench/gpu_check.sh", carry=[".gpudata"], timeout_s=600)
# Steps (each bounded; everything stops by $FE_FAST_GPU_DEADLINE seconds):
# 1. build fe_fast with the CUDA module for the present GPU;
# 2. GPU tests: compiled Triton and CUDA knn, Triton modulated convolution and s_grad_reduce on CUDA
#    tensors, the ops-level knn/Chamfer tests with the cuda and triton backends;
# 3. benchmarks: knn (Triton vs CUDA vs cdist+min), s_grad_reduce (Triton vs eager torch), modulated
#    conv (Triton and the torch formulation vs the grouped-conv reference and a plain cuDNN conv),
#    HOUV on CUDA (32 pairs per houv_batch call, and one pair per call);
# 4. with the time left (up to $FE_FAST_GPU_TRAIN_MIN minutes): train the 64x64 toy-face StyleGAN2
#    that the editing benchmark and the demo use.
# Outputs in $OUT (default ./gpu-out): G_ema.safetensors, train_metrics.jsonl, train_final.png,
# tables.md, houv.md, houv.jsonl, logs.tar.gz (every log). Non-zero exit if the build or a test failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
LOG=$OUT/logs
mkdir -p "$OUT" "$LOG"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
TRAIN_MIN=${FE_FAST_GPU_TRAIN_MIN:-3}
status=0
step() { echo "== $* ($(date +%T))"; }
finish() {
  step done
  cp "$LOG/train/G_ema.safetensors" "$OUT/" 2>/dev/null
  cp "$LOG/train/metrics.jsonl" "$OUT/train_metrics.jsonl" 2>/dev/null
  cp "$LOG/train/samples/final.png" "$OUT/train_final.png" 2>/dev/null
  rm -f "$LOG/train/checkpoint.pt"
  tar czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOG"
  cat "$OUT/tables.md" "$OUT/houv.md" 2>/dev/null
}
trap finish EXIT
trap 'exit 143' TERM INT
DEADLINE=${FE_FAST_GPU_DEADLINE:-480}  # seconds from the start: later steps get what is left
left() { local l=$((DEADLINE - SECONDS)); [ "$l" -lt "$1" ] && echo "$l" || echo "$1"; }
# bounded NAME MAX CMD...: run CMD with at most MAX seconds and never past the deadline
bounded() {
  local name=$1 t; t=$(left "$2"); shift 2
  if [ "$t" -le 20 ]; then echo "(skipped $name: deadline)"; return 124; fi
  timeout "$t" "$@"
}

step env
{
  nvidia-smi || true
  nvcc --version || true
  "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__); print(torch.cuda.get_device_name(), torch.cuda.get_device_properties(0).multi_processor_count, 'SMs')"
  nproc
} >"$LOG/env.txt" 2>&1
cat "$LOG/env.txt"

step build
# Only the present GPU's architecture (faster); the CPU-side build compiles sm_80 and sm_90.
ARCH=$("$PY" -c "import torch; p = torch.cuda.get_device_capability(); print(f'{p[0]}{p[1]}')" 2>/dev/null || echo 90)
if ! FE_FAST_CUDA=1 FE_FAST_CUDA_ARCHS=${FE_FAST_CUDA_ARCHS:-$ARCH} \
    "$PY" -m pip install --no-build-isolation --no-deps -e . >"$LOG/build.log" 2>&1; then
  echo "BUILD FAILED"; tail -60 "$LOG/build.log"; exit 1
fi
"$PY" -c "from fe_fast import _C_cuda; print('fe_fast._C_cuda devices:', _C_cuda.device_count())" || exit 1

step "GPU tests: compiled Triton and CUDA kernels on CUDA tensors"
TRITON_INTERPRET=0 bounded gpu-tests 240 "$PY" -m pytest tests/kernels/test_knn_gpu.py \
  tests/kernels/test_knn_cuda_build.py tests/kernels/test_modulated_conv_triton.py \
  tests/kernels/test_s_grad_reduce_gpu.py -n 4 -q -rs --durations=10 -p no:cacheprovider 2>&1 | tee "$LOG/tests_gpu.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

step "ops knn/chamfer tests, cuda and compiled-Triton backends on CUDA tensors"
TRITON_INTERPRET=0 bounded ops-tests 120 "$PY" -m pytest tests/ops/test_knn.py tests/ops/test_chamfer.py \
  -k "cuda or triton" -n 8 -q -rs -p no:cacheprovider 2>&1 | tee "$LOG/tests_ops.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

export TRITON_INTERPRET=0 FE_FAST_BENCH_ROUNDS=10
bench() {  # name, timeout, pytest args...
  local name=$1 t=$2; shift 2
  step "benchmark $name"
  echo "## $name ($(nvidia-smi --query-gpu=name --format=csv,noheader))" >>"$OUT/tables.md"
  FE_FAST_BENCH_TABLE="$LOG/table_$name.md" bounded "$name" "$t" "$PY" -m pytest "$@" -p no:xdist \
    -p no:cacheprovider --benchmark-only -s -q --benchmark-json="$LOG/bench_$name.json" \
    --benchmark-columns=median,min,max,rounds >"$LOG/bench_$name.log" 2>&1 || echo "($name: rc $?)"
  cat "$LOG/table_$name.md" >>"$OUT/tables.md" 2>/dev/null || tail -20 "$LOG/bench_$name.log"
  echo >>"$OUT/tables.md"
}
if [ -z "${FE_FAST_GPU_ONLY_MODCONV_BENCH:-}" ]; then
  bench knn 150 bench/bench_knn_gpu.py
  bench s_grad_reduce 60 bench/bench_s_grad_reduce.py -k cuda
fi
bench modulated_conv 90 bench/bench_modulated_conv.py -k cuda

step "HOUV on CUDA: generated pairs and the real bunny scans, 32 pairs per houv_batch call"
bounded houv 100 "$PY" bench/bench_houv.py --device cuda --pairs-dir .gpudata/pairs \
  --methods HOUV HOUV_pri --pairs 32 --batch-pairs 32 --out "$OUT/houv.md" \
  >"$LOG/houv.log" 2>&1 || { echo "(houv: rc $?)"; tail -20 "$LOG/houv.log"; }
step "HOUV on CUDA, one pair per call (latency)"
bounded houv-single 40 "$PY" bench/bench_houv.py --device cuda --pairs-dir .gpudata/pairs --methods HOUV \
  --pairs 4 --protocols mvp --no-real --out "$LOG/houv_single.md" >"$LOG/houv_single.log" 2>&1 || echo "(houv single: rc $?)"
cat "$LOG/houv_single.md" 2>/dev/null

# last: the generator for the editing benchmark and the demo, with the time that is left
TRAIN_SEC=$(left $((TRAIN_MIN * 60 + 40)))
step "train the toy-face generator ($((TRAIN_SEC - 40)) s of training)"
if [ "$TRAIN_SEC" -gt 100 ]; then
  bounded train "$TRAIN_SEC" "$PY" -m fe_fast train-gan --data toyfaces --resolution 64 \
    --toy-images 20000 --z-dim 256 --w-dim 256 --n-mlp 4 --channel-max 128 --batch 32 --kimg 100000 \
    --minutes "$(awk "BEGIN {print ($TRAIN_SEC - 40) / 60}")" --workers 8 --sample-every 50000 \
    --checkpoint-every 0 --log-every 50 --device cuda --no-progress --out "$LOG/train" >"$LOG/train.log" 2>&1 \
    || { echo "TRAINING FAILED"; tail -30 "$LOG/train.log"; status=1; }
  tail -2 "$LOG/train.log"; tail -1 "$LOG/train/metrics.jsonl" 2>/dev/null
fi
exit $status

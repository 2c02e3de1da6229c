#!/usr/bin/env bash
# One-shot device check (issues 2, 3, 6, 7), ready for one call of the device tool:
#   run(command="bash bench/gpu_check.sh", carry=[".gpudata"], timeout_s=600)
# .gpudata/stanford_bunny is a copy of ../shared/data/stanford_bunny (the real scans for HOUV).
#
# 1. In the background: train a 64x64 toy-face StyleGAN2 on the GPU for $FE_FAST_GPU_TRAIN_MIN
#    minutes (the generator that the editing benchmark and the demo use; G_ema.safetensors comes back).
# 2. Meanwhile: build fe_fast with the CUDA module, run the GPU tests (compiled Triton and CUDA knn,
#    Triton modulated convolution and s_grad_reduce on CUDA tensors, ops tests with the cuda backend).
# 3. After training (GPU to itself): benchmarks: knn (Triton vs CUDA vs cdist+min), modulated conv
#    (Triton vs grouped-conv reference vs plain cuDNN conv), s_grad_reduce (Triton vs eager torch),
#    HOUV on CUDA (batched pairs).
# Outputs in $OUT (default ./gpu-out): G_ema.safetensors, train_metrics.jsonl, train_final.png,
# tables.md, houv.md, logs.tar.gz (every log). Exit status non-zero if the build or a test failed.
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
DEADLINE=${FE_FAST_GPU_DEADLINE:-540}  # seconds from the start: later steps get what is left
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

step "train toy-face generator in the background ($TRAIN_MIN min)"
PYTHONPATH=$PWD TRITON_INTERPRET=0 "$PY" -m fe_fast train-gan --data toyfaces --resolution 64 \
  --toy-images 20000 --z-dim 256 --w-dim 256 --n-mlp 4 --channel-max 128 --batch 32 --kimg 100000 \
  --minutes "$TRAIN_MIN" --workers 6 --sample-every 50000 --checkpoint-every 0 --log-every 50 \
  --device cuda --no-progress --out "$LOG/train" >"$LOG/train.log" 2>&1 &
TRAIN_PID=$!
( sleep $((TRAIN_MIN * 60 + 150)); kill $TRAIN_PID 2>/dev/null ) &  # watchdog: a hung run must not eat the lease

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

step "ops knn/chamfer tests (cuda backend included) + Triton interpreter tests"
TRITON_INTERPRET=1 bounded ops-tests 150 "$PY" -m pytest tests/ops/test_knn.py tests/ops/test_chamfer.py \
  tests/kernels/test_knn_triton.py -n 8 -q -rs -p no:cacheprovider 2>&1 | tee "$LOG/tests_ops.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1

step "waiting for the training run"
wait $TRAIN_PID || { echo "TRAINING FAILED"; tail -30 "$LOG/train.log"; status=1; }
tail -3 "$LOG/train.log"; tail -2 "$LOG/train/metrics.jsonl" 2>/dev/null

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
bench knn 150 bench/bench_knn_gpu.py
bench modulated_conv 90 bench/bench_modulated_conv.py -k cuda
bench s_grad_reduce 60 bench/bench_s_grad_reduce.py -k cuda

step "HOUV on CUDA: generated pairs and the real bunny scans, 32 pairs per houv_batch call"
FE_FAST_BUNNY_DIR=$PWD/.gpudata/stanford_bunny bounded houv 150 "$PY" bench/bench_houv.py --device cuda \
  --methods HOUV HOUV_pri --pairs 32 --batch-pairs 32 --preset thesis --out "$OUT/houv.md" \
  >"$LOG/houv.log" 2>&1 || { echo "(houv: rc $?)"; tail -20 "$LOG/houv.log"; }
step "HOUV on CUDA, one pair per call (latency)"
bounded houv-single 60 "$PY" bench/bench_houv.py --device cuda --methods HOUV --pairs 4 --protocols mvp \
  --no-real --out "$LOG/houv_single.md" >"$LOG/houv_single.log" 2>&1 || echo "(houv single: rc $?)"
cat "$LOG/houv_single.md" 2>/dev/null
exit $status

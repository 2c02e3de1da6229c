#!/usr/bin/env bash
# One-shot device check (not run by `make bench`): builds fe_fast with CUDA, runs the GPU benchmarks
# (bench/bm_*.py, full mode) and GPU tests, ready for one call of the device tool (at most 8 minutes). Prepare here:
#   git archive HEAD > .gpudata/src.tar    # the committed tree, not files others are editing
#   python bench/bm_houv.py --pairs 32 --methods --pairs-dir .gpudata/pairs   # needs Open3D
# then run(command="mkdir /tmp/src && tar xf .gpudata/src.tar -C /tmp/src && cp -r .gpudata /tmp/src/
#              && cd /tmp/src && OUT=$OUT bash bench/gpu_check.sh", carry=[".gpudata"], timeout_s=600)
# Steps (each bounded; everything stops by $FE_FAST_GPU_DEADLINE seconds, default 480):
# 1. build fe_fast with the CUDA module for the present GPU;
# 2. modulated convolution routes against a plain cuDNN conv + bias + activation of the same shape
#    (tools/gpu_modconv_routes.py: fp32 then bf16, fwd and fwd+bwd, the three 1024-generator layers
#    first, then the six benchmark shapes, compiled routes last), and the 1024 synthesis network
#    eager vs one CUDA graph vs the grouped reference;
# 3. training throughput, ours vs the grouped-conv reference in one run: the toy32 preset and a
#    256x256 config-f generator (bench/bm_stylegan_train.py), then a torch.profiler table of
#    16 toy32 steps (kernel launches and host synchronisations per step; tools/gpu_train_profile.py);
# 4. GPU tests of the Triton and CUDA kernels on CUDA tensors (every tests/kernels/test_*.py but the
#    interpreter-only *_triton.py files: test_knn_gpu.py, test_knn_topk_gpu.py, ...), then, with the
#    time left, the knn, knn_topk and s_grad_reduce benchmarks and HOUV on CUDA.
# Outputs in $OUT (default ./gpu-out): tables.md (every table, with the card and versions),
# houv.md, logs.tar.gz (every log). Non-zero exit if the build or a test failed.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
LOG=$OUT/logs
mkdir -p "$OUT" "$LOG"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
status=0
step() { echo "== $* ($(date +%T))"; }
finish() {
  step done
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
  "$PY" -c "import torch, triton; print(torch.cuda.get_device_name(), '|', torch.cuda.get_device_properties(0).multi_processor_count, 'SMs | torch', torch.__version__, '| triton', triton.__version__)" | tee "$LOG/card.txt"
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

echo "# GPU check $(date -u +%F) on $(cat "$LOG/card.txt" 2>/dev/null)" >"$OUT/tables.md"
export TRITON_INTERPRET=0

step "modulated convolution routes vs a plain convolution"
bounded modconv-routes 230 "$PY" tools/gpu_modconv_routes.py --device cuda --deadline 150 --reps 20 \
  --synthesis 1024 --out "$LOG/modconv_routes.md" >"$LOG/modconv_routes.log" 2>&1 || echo "(modconv routes: rc $?)"
{ echo "## Modulated convolution routes"; cat "$LOG/modconv_routes.md" 2>/dev/null || tail -20 "$LOG/modconv_routes.log"; echo; } >>"$OUT/tables.md"

step "training throughput: toy32 preset and 256x256 config-f, ours vs grouped reference"
bounded train-toy32 70 "$PY" bench/bm_stylegan_train.py --device cuda --preset toy32 --steps 16 --repeats 2 \
  --json "$LOG/train.jsonl" >"$LOG/train_toy32.log" 2>&1 || echo "(train toy32: rc $?)"
bounded train-256 90 "$PY" bench/bm_stylegan_train.py --device cuda --resolution 256 --channel-max 512 \
  --batch 8 --steps 4 --repeats 2 --json "$LOG/train.jsonl" >"$LOG/train_256.log" 2>&1 || echo "(train 256: rc $?)"
{ echo "## Training throughput (img/s, median of repeats; ours / grouped reference)"; echo
  echo "| config | batch | ours img/s | grouped reference img/s | speed-up |"; echo "|---|---|---|---|---|"
  "$PY" -c "
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line); m = r['median_img_per_s']
    name = r['preset'] or f\"{r['resolution']}x{r['resolution']} channel_max {r['channel_max']}\"
    print(f\"| {name} | {r['batch']} | {m['ours']:.1f} | {m['grouped_reference']:.1f} | {r['speedup_wall']:.2f}x |\")
" "$LOG/train.jsonl" 2>/dev/null; echo; } >>"$OUT/tables.md"
bounded train-profile 60 "$PY" tools/gpu_train_profile.py --device cuda --steps 16 \
  --out "$LOG/train_profile.md" >"$LOG/train_profile.log" 2>&1 || echo "(profile: rc $?)"
head -4 "$LOG/train_profile.md" >>"$OUT/tables.md" 2>/dev/null; echo >>"$OUT/tables.md"

step "GPU tests: compiled Triton and CUDA kernels on CUDA tensors"
bounded gpu-tests 100 "$PY" -m pytest $(ls tests/kernels/test_*.py | grep -v -e _triton.py) tests/kernels/test_modulated_conv_triton.py -n 4 -q -rs -p no:cacheprovider \
  2>&1 | tee "$LOG/tests_gpu.log" | tail -5
[ "${PIPESTATUS[0]}" = 0 ] || status=1
{ echo "## GPU tests (tests/kernels on CUDA tensors)"; tail -1 "$LOG/tests_gpu.log"; echo; } >>"$OUT/tables.md"

bench() {  # name (the module's report name), timeout, pytest args... (full sizes)
  local name=$1 t=$2; shift 2
  step "benchmark $name"
  echo "## $name" >>"$OUT/tables.md"
  FE_FAST_BENCH_OUT="$LOG/bench" bounded "$name" "$t" "$PY" -m pytest "$@" --full \
    -p no:xdist -p no:cacheprovider -s -q >"$LOG/bench_$name.log" 2>&1 || echo "($name: rc $?)"
  cat "$LOG/bench/$name.md" >>"$OUT/tables.md" 2>/dev/null || tail -20 "$LOG/bench_$name.log"
  echo >>"$OUT/tables.md"
}
bench knn_gpu 60 bench/bm_knn_gpu.py
bench knn_topk_gpu 40 bench/bm_knn_topk_gpu.py
bench s_grad_reduce 40 bench/bm_s_grad_reduce.py -k cuda
if [ -d .gpudata/pairs ]; then
  step "HOUV on CUDA: 32 pairs per houv_batch call"
  bounded houv 80 "$PY" bench/bm_houv.py --device cuda --pairs-dir .gpudata/pairs \
    --methods HOUV --pairs 32 --batch-pairs 32 --out "$OUT/houv.md" >"$LOG/houv.log" 2>&1 || echo "(houv: rc $?)"
fi
exit $status

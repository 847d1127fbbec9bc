#!/usr/bin/env bash
# The prepared speed check for a lent CUDA card, run after scripts/train_gpu.sh
# (one command, about 3 minutes on an H200; every figure lands in $OUT):
#
#   scripts/bench_gpu.sh                   # there
#   DEVICE=cpu TASKS=upscale2 MP=0.05 GEMM=512 scripts/bench_gpu.sh   # a dry run here
#
# 1. benchmarks/peak.py at bf16 and at fp16 for x2 and x4: the card's GEMM
#    peak, the engine's input MP/s on a 4 MP photo, its share of that peak,
#    and the precision's cost against fp32 on 320 px crops of the val photos
#    (.gpudata/val, made by `scripts/train_gpu.sh prep`).
#    Then bf16 again with NHWC activations (--channels-last), speed only.
# 2. benchmarks/host_overhead.py: the engine's rate with a network that costs
#    nothing, i.e. the ceiling that tiling, blending and copies leave.
# The bar for x4 on an H200-class card is 20 input MP/s.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/scnrestore_bench}
TASKS=${TASKS:-upscale2,upscale4}
MP=${MP:-4}
GEMM=${GEMM:-8192}
VAL=${VAL:-.gpudata/val}
mkdir -p "$OUT"
. scripts/gpu_env.sh
cd benchmarks
for prec in bf16 fp16; do
  if [ "$DEVICE" = cpu ] && [ "$prec" = fp16 ]; then continue; fi
  echo "== peak.py $prec"
  timeout -k 5 "${PEAK_S:-120}" $PY peak.py --device "$DEVICE" --precision "$prec" --tasks "$TASKS" \
    --photo-mp "$MP" --gemm-size "$GEMM" --val "../$VAL" --val-crop 320 \
    --json "$OUT/peak_${DEVICE}_$prec.json" 2>&1 | tee "$OUT/peak_${DEVICE}_$prec.txt"
done
if [ "$DEVICE" != cpu ]; then
  echo "== peak.py bf16, NHWC activations (the CPU's layout): does the card prefer it?"
  timeout -k 5 "${PEAK_S:-120}" $PY peak.py --device "$DEVICE" --precision bf16 --tasks "$TASKS" \
    --photo-mp "$MP" --gemm-size "$GEMM" --no-quality --channels-last \
    --json "$OUT/peak_${DEVICE}_bf16_nhwc.json" 2>&1 | tee "$OUT/peak_${DEVICE}_bf16_nhwc.txt"
fi
echo "== host_overhead.py"
timeout -k 5 "${HOST_S:-60}" $PY host_overhead.py --device "$DEVICE" --size 1024 2>&1 \
  | tee "$OUT/host_overhead_$DEVICE.txt"
ls -la "$OUT"

#!/usr/bin/env bash
# Train the five shipped models at once on one CUDA machine, each fitted into
# BUDGET seconds with `scnrestore train --time-budget`, then pack each run
# into $OUT/NAME.tar (scripts/pack_run.py) and time inference on the card.
#
#   BUDGET=430 DATA=.gpudata/train VAL=.gpudata/val scripts/train_gpu.sh
#   MODELS="denoise dejpeg upscale_x3" BUDGET=430 scripts/train_gpu.sh   # a subset
#
# Each run starts from its shipped weights (the last stage) with a learning-rate
# warm-up: from-scratch runs at lr 1e-3 without one blew up on the H200 (L1 0.42
# after 50 steps) and wasted half their budget. DEVICE=cpu runs the same thing
# here, as a dry run of the script itself.
set -u
BUDGET=${BUDGET:-430}
DATA=${DATA:-.gpudata/train}
VAL=${VAL:-.gpudata/val}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/scn_out}
RUNS=${RUNS:-/tmp/scn_runs}
MODELS=${MODELS:-upscale_x2 upscale_x3 upscale_x4 denoise dejpeg}
SHIPPED=scnrestore/models
PY=${PY:-python3}
mkdir -p "$OUT" "$RUNS"
export PYTHONUNBUFFERED=1
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no cuda')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

common=(--data "$DATA" --device "$DEVICE" --threads 2 --time-budget "$BUDGET"
        --ckpt-every 500 --log-every 50 -q ${EXTRA:-})
launch() {
  local name=$1; shift
  timeout -k 30 -s TERM $((BUDGET + 60)) $PY -m scnrestore train "$@" --out "$RUNS/$name" \
    "${common[@]}" >"$RUNS/$name.out" 2>&1 &
}
for name in $MODELS; do
  case $name in
    upscale_x2) launch $name upscale -s 2 --batch 32 --patch 64 --lr 5e-4 --warmup 100 --init $SHIPPED/scn-x2.safetensors ;;
    upscale_x3) launch $name upscale -s 3 --batch 32 --patch 64 --lr 5e-4 --warmup 100 --init $SHIPPED/scn-x3.safetensors ;;
    upscale_x4) launch $name upscale -s 4 --batch 32 --patch 48 --lr 5e-4 --warmup 100 --init $SHIPPED/scn-x4.safetensors ;;
    denoise) launch $name denoise --batch 32 --patch 96 --lr 1e-3 --warmup 200 --level-focus 25 --init $SHIPPED/scn-denoise.safetensors ;;
    dejpeg) launch $name dejpeg --batch 32 --patch 96 --lr 1e-3 --warmup 200 --init $SHIPPED/scn-dejpeg.safetensors ;;
    *) echo "unknown model $name" >&2; exit 2 ;;
  esac
done
if command -v nvidia-smi >/dev/null; then
  (sleep 120; nvidia-smi --query-gpu=utilization.gpu,memory.used,power.draw --format=csv) &
fi
wait
for name in $MODELS; do
  echo "== $name"; tail -n 3 "$RUNS/$name.out"; tail -n 1 "$RUNS/$name/log.jsonl" 2>/dev/null
  $PY scripts/pack_run.py "$RUNS/$name" "$OUT/$name.tar" || echo "pack $name failed"
done
if [ "${BENCH:-1}" = 1 ]; then
  timeout -k 5 "${BENCH_S:-70}" $PY benchmarks/bench.py --device "$DEVICE" --tasks upscale2,upscale4,denoise \
    --precisions fp32,bf16,fp16 --size 512 --repeat 3 --val "$VAL" --no-startup \
    --json "$OUT/bench_cuda.json" 2>&1 | tee "$OUT/bench_cuda.txt"
  # the engine's own ceiling (tiny network): is the card still waiting on the host?
  timeout -k 5 60 $PY benchmarks/host_overhead.py --device "$DEVICE" 2>&1 | tee -a "$OUT/bench_cuda.txt"
fi
ls -la "$OUT"

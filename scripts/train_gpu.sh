#!/usr/bin/env bash
# Train the five shipped models at once on one CUDA machine, each fitted into
# BUDGET seconds with `scnrestore train --time-budget`, then pack each run
# into $OUT/NAME.tar (scripts/pack_run.py) and time inference on the card.
#
#   BUDGET=430 DATA=.gpudata/train VAL=.gpudata/val scripts/train_gpu.sh
#
# DEVICE=cpu runs the same thing here, as a dry run of the script itself.
set -u
BUDGET=${BUDGET:-430}
DATA=${DATA:-.gpudata/train}
VAL=${VAL:-.gpudata/val}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/scn_out}
RUNS=${RUNS:-/tmp/scn_runs}
INIT=scnrestore/models/scn-x2.safetensors
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
launch upscale_x2 upscale -s 2 --batch 32 --patch 64 --init "$INIT"
launch upscale_x3 upscale -s 3 --batch 32 --patch 64 --init "$INIT"
launch upscale_x4 upscale -s 4 --batch 32 --patch 48 --init "$INIT"
launch denoise denoise --batch 32 --patch 96
launch dejpeg dejpeg --batch 32 --patch 96
if command -v nvidia-smi >/dev/null; then
  (sleep 120; nvidia-smi --query-gpu=utilization.gpu,memory.used,power.draw --format=csv) &
fi
wait
for name in upscale_x2 upscale_x3 upscale_x4 denoise dejpeg; do
  echo "== $name"; tail -n 3 "$RUNS/$name.out"; tail -n 1 "$RUNS/$name/log.jsonl" 2>/dev/null
  $PY scripts/pack_run.py "$RUNS/$name" "$OUT/$name.tar" || echo "pack $name failed"
done
if [ "${BENCH:-1}" = 1 ]; then
  timeout -k 5 "${BENCH_S:-70}" $PY benchmarks/bench.py --device "$DEVICE" --tasks upscale2,denoise \
    --precisions fp32,bf16,fp16 --size 512 --repeat 3 --val "$VAL" --no-startup \
    --json "$OUT/bench_cuda.json" 2>&1 | tee "$OUT/bench_cuda.txt"
fi
ls -la "$OUT"

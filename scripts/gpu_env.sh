# Sourced by scripts/train_gpu.sh and scripts/bench_gpu.sh on the lent machine,
# after PY is set. Its image has torch, typer, rich, pillow, numpy, requests,
# safetensors and tifffile, but (by its last package list) not platformdirs or
# pypng. Without platformdirs the registry cannot load: training from --init
# files still runs, but the benchmarks would fall back to random weights and
# skip the precision cost. `scripts/train_gpu.sh prep` fetches both as
# pure-Python wheels into .gpudata/whl; they go on PYTHONPATH (importable as
# zips) only where the image lacks them. Then one line says what is missing.
if ! $PY -c "import platformdirs, png" 2>/dev/null; then
  for w in "$PWD"/.gpudata/whl/*.whl; do
    [ -e "$w" ] && PYTHONPATH="$w${PYTHONPATH:+:$PYTHONPATH}"
  done
  export PYTHONPATH
fi
$PY - <<'PYEOF' || echo "preflight: registry not loadable; benchmarks will time random weights"
import importlib
missing = []
for m in ["torch", "typer", "rich", "PIL", "numpy", "requests", "safetensors", "tifffile", "platformdirs", "png"]:
    try:
        importlib.import_module(m)
    except ImportError:
        missing.append(m)
print("preflight: missing " + (", ".join(missing) if missing else "nothing"))
from scnrestore.weights.registry import load_registry
print(f"preflight: registry has {len(load_registry())} models")
PYEOF

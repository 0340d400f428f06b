#!/usr/bin/env bash
# One prepared run for a single-GPU machine (one H100 or H200, PyTorch preinstalled, no internet):
# `genspot compare --protocol full` for every study model plus genspot's candidate on the full
# training split, results and logs into $OUT. Target: under 8 minutes.
#
#   scripts/fetch_wheels.sh                  # here, once: the non-torch wheels, into wheels/
#   OUT=/tmp/gpu-out scripts/gpu_run.sh      # there: results in $OUT/full, logs in $OUT
#
# Any CUDA machine works the same way: with internet, `pip install -e .` replaces the wheels step.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder for results}
DATA=${DATA:-}
for d in ../shared/data/cifake-train.zip shared/data/cifake-train.zip; do
  [ -z "$DATA" ] && [ -f "$d" ] && DATA=$d
done
[ -n "$DATA" ] || { echo "no cifake-train.zip found; set DATA" >&2; exit 2; }
mkdir -p "$OUT"
t0=$(date +%s)
python3 -m venv --system-site-packages .venv-gpu        # keeps the machine's own CUDA PyTorch
if [ -d wheels ]; then
  .venv-gpu/bin/pip install -q --no-index --find-links wheels --no-deps -r wheels/requirements.txt
  .venv-gpu/bin/pip install -q --no-index --no-deps --no-build-isolation -e .
else
  .venv-gpu/bin/pip install -q -e .
fi
{ nvidia-smi; .venv-gpu/bin/python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"; } > "$OUT/device.txt" 2>&1
export GENSPOT_CACHE_DIR=${GENSPOT_CACHE_DIR:-/tmp/genspot-cache}
# bf16 autocast and larger batches on the GPU; the recipes' epochs for the full protocol
# (compare.FULL_EPOCHS) are kept, so the numbers compare with the CPU's.
.venv-gpu/bin/genspot compare --data "$DATA" --protocol full --device cuda --precision bf16 --batch-size 512 \
  --out "$OUT/full" 2>&1 | tee "$OUT/compare.log"
find "$OUT/full" -name '*.ckpt' -delete                  # checkpoints are for resuming, not results
echo "gpu_run.sh: $(( $(date +%s) - t0 )) s in all" | tee -a "$OUT/compare.log"

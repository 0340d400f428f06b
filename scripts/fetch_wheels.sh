#!/usr/bin/env bash
# Download every wheel genspot needs except the PyTorch stack into wheels/, for a GPU machine
# without internet access that has PyTorch preinstalled (scripts/gpu_run.sh installs from there).
# Run it here, in the project's venv, for the GPU machine's Python version and platform.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p wheels
"$PY" -m pip freeze --exclude-editable \
  | grep -viE '^(torch|torchvision|torchaudio|triton|nvidia-|cuda-|pytest|playwright|schemathesis|hypothesis|httpx2)' \
  > wheels/requirements.txt
"$PY" -m pip download -q --no-deps --only-binary=:all: -d wheels -r wheels/requirements.txt
du -sh wheels

#!/usr/bin/env bash
# Checks the Java engine's forward pass, parameter counts and export-init files against the independent PyTorch
# MicroDiT in bench/torch (Debian's python3-torch, CPU, 2 threads). Exits non-zero when any check fails.
#   bench/compare-forward.sh [--tolerance 1e-4] [--only CONFIG] [--workdir DIR]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${MICRODIT_TORCH_PYTHON:-/usr/bin/python3}
if ! "$python" -c 'import torch, numpy' 2>/dev/null; then
  echo "compare-forward: $python has no torch/numpy (set MICRODIT_TORCH_PYTHON)" >&2
  exit 2
fi
# Build the engine once up front, so its build output does not interleave with the report.
"$root/src/main/scripts/microdit" params --config fashion-small >/dev/null
exec "$python" "$root/bench/torch/check_forward.py" "$@"

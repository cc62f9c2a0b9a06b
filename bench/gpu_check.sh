#!/usr/bin/env bash
# The GPU checks as one script: the CUDA-only tests (graphs, tf32 switching, the CUDA MC path,
# v2 on CUDA, the GPU memory metric), then `python -m bench gpu`, whose results go to the output
# folder given by the OUT variable when that is set, else to bench/results/.
#
# Usage: bash bench/gpu_check.sh    (PYTHON=... picks the interpreter: one with a CUDA build of
# torch and dropserve installed with its dev extras beside it)
set -uo pipefail

cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
export BENCH_RESULTS_DIR="${OUT:-bench/results}"
export PYTHONUNBUFFERED=1

if ! "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "bench/gpu_check.sh: torch sees no CUDA device" >&2
  exit 2
fi
status=0
"$python" -m pytest -q -p no:cacheprovider -rs \
  tests/unit/test_cuda_graphs.py tests/unit/test_precision.py tests/unit/test_mc_identity.py \
  tests/integration/test_v2_gpu.py tests/integration/test_metrics.py \
  tests/integration/test_bench_gpu.py || status=1
"$python" -m bench gpu || status=1
exit "$status"

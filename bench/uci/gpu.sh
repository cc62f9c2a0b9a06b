#!/usr/bin/env bash
# The full MC-dropout UCI benchmark on one CUDA GPU: five data sets x 20 splits, each split a
# 12-candidate grid on 80 % of its train rows and the final network on all of them, 4,000 epochs,
# T = 10,000 test passes. One process per data set (--jobs 5); in each, every network of every
# split trains in one stack, so a data set costs about what one network does.
#
# Usage: bash bench/uci/gpu.sh [DATA_DIR]
#   DATA_DIR: folders laid out as ../shared/data/uci/<dataset>/ (default: .uci in the repo root).
#   DATASETS=concrete,yacht limits the data sets; EXTRA="--splits 5" passes more flags;
#   OUT=DIR names an output folder for the results (default: bench/results).
# It needs python3 with a CUDA build of torch, numpy and tqdm, and nothing of the serving stack.
# Each data set's result is written the moment it finishes, to uci-gpu.{json,md} in that folder.
#
# The data do not ship with dropserve (see data/README.md): pass their folder as DATA_DIR, or
# copy them into the default, a folder that git ignores:
#   cp -r ../shared/data/uci/. .uci/ && echo '/.uci/' >> .git/info/exclude
set -euo pipefail

cd "$(dirname "$0")/../.."
data_dir="${1:-.uci}"
python="${PYTHON:-python3}"
out="${OUT:+$OUT/uci-gpu}"
out="${out:-bench/results/uci-gpu}"

if [[ ! -d "$data_dir" ]]; then
  echo "bench/uci/gpu.sh: no data folder $data_dir; see the comment at the top of this script" >&2
  exit 2
fi
"$python" - <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit("bench/uci/gpu.sh: torch sees no CUDA device; use python -m bench.uci --device cpu")
print(f"torch {torch.__version__} on {torch.cuda.get_device_name(0)}", flush=True)
EOF

export PYTHONUNBUFFERED=1
datasets=()
if [[ -n "${DATASETS:-}" ]]; then
  datasets=(--datasets "$DATASETS")
fi
start=$(date +%s)
# shellcheck disable=SC2086  # EXTRA is a list of flags on purpose
"$python" -m bench.uci --data-dir "$data_dir" "${datasets[@]}" --device cuda --jobs 5 \
  --protocol-selection --quiet --out "$out" ${EXTRA:-}
echo "bench/uci/gpu.sh: done in $(($(date +%s) - start)) s; results in $out.json and $out.md"

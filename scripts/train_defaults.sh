#!/usr/bin/env bash
# Retrain the two default bundles that ship in models/, from the CSVs in data/ (see data/README.md).
# Usage: bash scripts/train_defaults.sh   (or `make models`)
# Existing models/concrete and models/digits are removed first, so the result is version 1 of
# each. Fixed seeds make the weights byte-for-byte reproducible on the same CPU build of torch.
set -euo pipefail

cd "$(dirname "$0")/.."
models_dir="${MODELS_DIR:-models}"

# The `dropserve` console script when installed (make install), else the package as a module.
if command -v dropserve >/dev/null 2>&1; then
  dropserve=(dropserve)
else
  dropserve=("${PYTHON:-.venv/bin/python}" -m service)
fi

rm -rf "$models_dir/concrete" "$models_dir/digits"

# Regression with the MC-dropout protocol of Gal & Ghahramani (2016): dropout on the inputs and
# the hidden layer, prior weight decay l = 1e-2 with tau = 0.05, a fixed number of epochs (no
# early stopping, so the validation metrics are not selected on). tau is then fitted on the
# validation rows.
"${dropserve[@]}" train \
  --data data/concrete.csv --target strength --name concrete \
  --description "Concrete compressive strength (MPa) from mix and age; UCI, Yeh 1998" \
  --hidden 50 --dropout 0.05 --input-dropout 0.05 --dropout-style inverted \
  --epochs 2000 --patience 0 --batch-size 128 --lr 1e-3 \
  --prior-length-scale 1e-2 --prior-tau 0.05 \
  --seed 0 --models-dir "$models_dir" --quiet

# Classification with classic (unscaled) dropout, so both dropout styles ship. Dropout is the
# only regulariser (no weight decay) and training runs long enough for the deterministic net to
# grow slightly over-confident; averaging the MC passes then calibrates it (validation ECE 0.0066
# MC vs 0.0118 deterministic), where 200 epochs with weight decay left MC under-confident.
"${dropserve[@]}" train \
  --data data/digits.csv --target digit --task classification --name digits \
  --description "Handwritten digit (0-9) from an 8x8 image of counts 0-16; UCI optdigits" \
  --hidden 128 --dropout 0.2 --dropout-style classic \
  --epochs 400 --patience 0 --batch-size 128 --lr 1e-3 --weight-decay 0 \
  --seed 0 --models-dir "$models_dir" --quiet

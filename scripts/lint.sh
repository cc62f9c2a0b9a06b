#!/usr/bin/env bash
# The one lint gate, shared by `make lint`, `make test` and CI: formatting, then lint rules.
# Uses the tools in $VENV (default .venv); run `make install` first, or just `make lint`.
set -euo pipefail

cd "$(dirname "$0")/.."
bin="${VENV:-.venv}/bin"

set -x
"$bin/ruff" format --check .
"$bin/ruff" check .

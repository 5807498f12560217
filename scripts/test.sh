#!/usr/bin/env bash
# The test command: set up .venv if needed, lint, then run the whole test suite.
# Extra arguments go to pytest (scripts/test.sh -k config -x). Exits with pytest's code.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
VENV="${SHOPTUNE_VENV:-.venv}"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$VENV/bin/pytest" "$@"

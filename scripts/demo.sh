#!/usr/bin/env bash
# The main job: set up .venv if needed, then run shoptune's end-to-end demo on the embedded
# default model (SmolLM2-135M-Instruct, CPU): data -> LoRA -> merge -> eval base vs tuned ->
# vLLM + storefront -> runs/demo/report.html. Extra arguments go to `shoptune demo`
# (e.g. scripts/demo.sh --quick --out runs/demo-quick).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
VENV="${SHOPTUNE_VENV:-.venv}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$VENV/bin/shoptune" demo "$@"

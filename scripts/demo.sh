#!/usr/bin/env bash
# The main job: set up .venv if needed, then run shoptune's end-to-end demo on the embedded
# default model (SmolLM2-135M-Instruct, CPU). Extra arguments go to the demo.
#
# Until `shoptune demo` lands (issue 7) this prepares the default model and has it answer a
# shopper's question, in-process, with the shop's system prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
VENV="${SHOPTUNE_VENV:-.venv}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
"$VENV/bin/shoptune" models prepare smollm2-135m-instruct
"$VENV/bin/shoptune" chat --config configs/cpu-smollm2.yaml "$@" \
  "${SHOPTUNE_DEMO_QUESTION:-Hi! I need a phone under 2000 yuan. What do you recommend?}"

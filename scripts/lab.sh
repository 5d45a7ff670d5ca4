#!/usr/bin/env bash
# Open JupyterLab on the quickstart notebook (run by `make lab` after set-up). The pool picks CUDA
# when torch sees a GPU and the CPU otherwise (PoolConfig(device="auto")); the quickstart's demo
# uses a CPU pool. Extra arguments go to `jupyter lab` (e.g. --port 8899 --no-browser).
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
if [ "$(id -u)" = "0" ]; then
  args+=(--allow-root)  # containers and CI machines often run as root; JupyterLab refuses without it
fi
exec .venv/bin/jupyter lab "${args[@]}" "$@" notebooks/01_quickstart.ipynb

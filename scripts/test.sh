#!/usr/bin/env bash
# Set up, then run the whole test suite: lint, types (mypy), Python tests (pool, compactor, workload,
# widget, notebooks under nbval, the real-browser end-to-end test) and the JS unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
VENV=.venv
echo "== ruff"
"$VENV/bin/ruff" check autoglm_lab tests benchmarks hatch_build.py
echo "== mypy (pool and compactor, strict: [tool.mypy] in pyproject.toml)"
"$VENV/bin/mypy"
if [ -f js/package.json ]; then
  echo "== js unit tests (vitest)"
  (cd js && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm test --silent)
fi
if [ -x scripts/browser-deps.sh ]; then
  scripts/browser-deps.sh
fi
echo "== pytest"
"$VENV/bin/python" -m pytest "$@"
echo "== pool and compactor tests again on the pure-Python core (the compiled core's reference)"
AUTOGLM_LAB_PURE_PYTHON=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/pool tests/compactor
echo "== binder (repo2docker steps in a fresh venv, all notebooks under nbval, peak memory)"
scripts/binder-check.sh

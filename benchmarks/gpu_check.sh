#!/usr/bin/env bash
# The GPU path's check (issue 17), in one go on a machine with a CUDA device where torch and Triton
# are installed (no network needed; nothing is installed):
#   1. build the pool's C core in place (hatch_build.py's own compile step; without a compiler the
#      pool runs its pure-Python core, and this says so)
#   2. pytest -k cuda over tests/pool tests/compactor tests/workload
#   3. benchmarks/gpu_check.py: one table of ratios measured in this run
# About 5 minutes on one GPU. Exit status: 0 all passed and every target met; 1 a step failed or a
# target was missed; 2 no CUDA device (nothing run).
# Usage: benchmarks/gpu_check.sh [--small] [--dry-run]    PYTHON=python3 by default
#   --small    quick sizes: checks the steps, the figures mean nothing
#   --dry-run  on a machine without CUDA: the same steps on the CPU (the core compiled in a temporary
#              copy, the CUDA tests all skipped, the figures --device cpu --small), to check this script
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0
DEVICE=cuda
SMALL=""
BUILD_ROOT=$PWD
for arg in "$@"; do
  case "$arg" in
    --small) SMALL=--small ;;
    --dry-run) DEVICE=cpu; SMALL=--small
               BUILD_ROOT=$(mktemp -d); mkdir -p "$BUILD_ROOT/autoglm_lab/pool"
               cp hatch_build.py "$BUILD_ROOT/"; cp autoglm_lab/pool/_core.c "$BUILD_ROOT/autoglm_lab/pool/" ;;
    *) echo "gpu_check: unknown argument $arg (use --small or --dry-run)" >&2; exit 2 ;;
  esac
done

if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: no CUDA device: torch.cuda.is_available() is False (or torch is missing); nothing was run" >&2
  exit 2
fi
"$PY" -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '|',
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU (dry run)')"
if ! "$PY" -c "import triton; print('triton', triton.__version__)"; then
  echo "gpu_check: Triton is not installed: the compactor runs its torch path and the Triton checks fail" >&2
  status=1
fi

echo "== 1. the pool's C core (built in $BUILD_ROOT)"
BUILD_ROOT="$BUILD_ROOT" timeout 120 "$PY" - <<'EOF' || echo "the C core was not built; the pool falls back to its pure-Python core"
import sys, types
from pathlib import Path
try:  # hatch_build.py's compile step; its hook base class is only needed by hatch itself
    import hatchling.builders.hooks.plugin.interface  # noqa: F401
except ImportError:
    for name in ("hatchling", "hatchling.builders", "hatchling.builders.hooks", "hatchling.builders.hooks.plugin"):
        sys.modules.setdefault(name, types.ModuleType(name))
    stub = types.ModuleType("hatchling.builders.hooks.plugin.interface")
    stub.BuildHookInterface = object
    sys.modules["hatchling.builders.hooks.plugin.interface"] = stub
import os, sysconfig
root = Path(os.environ["BUILD_ROOT"]).resolve()
sys.path.insert(0, str(root))
import hatch_build
src = root / hatch_build.SOURCE
out = src.with_name("_core" + sysconfig.get_config_var("EXT_SUFFIX"))
hatch_build.CoreBuildHook._compile(None, root, src, out)
print("built", out.relative_to(root))
EOF
"$PY" -c "from autoglm_lab.pool import _impl; print('pool core:', _impl.IMPL, _impl.REASON or '(compiled, current)')"

echo "== 2. pytest -k cuda"
if "$PY" -c "import pytest, hypothesis" 2>/dev/null; then
  # addopts cleared: the notebook plugin (nbval) is not needed here and may not be installed
  timeout 200 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" -k cuda tests/pool tests/compactor tests/workload
  rc=$?
  if [ $rc -ne 0 ]; then echo "gpu_check: the CUDA tests failed (pytest exit $rc)" >&2; status=1; fi
else
  echo "gpu_check: pytest or hypothesis is not installed: the CUDA tests were NOT run" >&2
  status=1
fi

echo "== 3. figures"
timeout 240 "$PY" benchmarks/gpu_check.py --device "$DEVICE" $SMALL
rc=$?
if [ $rc -ne 0 ]; then echo "gpu_check: benchmarks/gpu_check.py exit $rc (1: a target missed or a measurement failed)" >&2; status=1; fi
exit $status

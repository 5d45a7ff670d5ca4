#!/usr/bin/env bash
# Rehearse the Binder build and run every notebook in it, so a broken Binder set-up fails here.
#
# Follows repo2docker's steps in a fresh virtual environment: a clean copy of the repository
# (tracked and not-ignored files, as a clone would have), the interpreter and Node.js that
# binder/environment.yml asks for (taken from this machine: python3, node), then binder/postBuild
# itself (torch CPU build, binder/requirements.txt, the package with its npm build). Then runs all
# notebooks under nbval headless in that environment and records the peak memory of the whole
# process tree (pytest and the kernels) in artifacts/binder-check.txt; mybinder.org gives 2 GB,
# so the check fails above BINDER_MEMORY_LIMIT_MIB (default 2048).
# Torch: AUTOGLM_TORCH_SPEC (default torch==2.13.0) from pip's configured index / find-links;
# mybinder's postBuild uses the PyTorch CPU index instead.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
LIMIT_MIB=${BINDER_MEMORY_LIMIT_MIB:-2048}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/autoglm-binder-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
echo "== binder-check in $WORK"

# 1. the repository as a fresh clone of this working tree would have it (no .venv, no node_modules, no bundle)
mkdir "$WORK/repo"
git ls-files -z --cached --others --exclude-standard \
  | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$WORK/repo"

# 2. the conda environment of binder/environment.yml: python 3.11 and Node.js
want_py=$(sed -n 's/^ *- python=\([0-9.]*\).*/\1/p' binder/environment.yml)
have_py=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$want_py" = "$have_py" ] || echo "binder-check: note: binder/environment.yml pins python $want_py, checking with $have_py"
command -v node >/dev/null || { echo "binder-check: node is needed (binder/environment.yml installs nodejs)" >&2; exit 1; }
"$PY" -m venv "$WORK/venv"
export PATH="$WORK/venv/bin:$PATH" VIRTUAL_ENV="$WORK/venv"
python -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "is ignored: it is neither" || true

# 3. binder/postBuild, as repo2docker runs it (from the repository root)
(cd "$WORK/repo" && AUTOGLM_TORCH_INDEX="" bash binder/postBuild) 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
[ "${PIPESTATUS[0]}" = 0 ] || { echo "binder-check: binder/postBuild failed" >&2; exit 1; }
python -c "import torch; assert not torch.version.cuda, 'Binder must get the CPU build of torch'; print('torch', torch.__version__, 'CPU build')"
python -c "import voila, autoglm_lab.widget; print('voila', voila.__version__, '| autoglm_lab.widget imports')"
python -c "from autoglm_lab.pool import _impl; assert _impl.IMPL == 'c', _impl.REASON; print('pool core: compiled')"

# 4. every notebook, headless, under nbval (the test runner is not part of the Binder image)
python -m pip install -q --disable-pip-version-check "nbval>=0.11" "pytest>=8" 2>&1 \
  | grep -v "is ignored: it is neither" || true
mkdir -p "$ROOT/artifacts"
(cd "$WORK/repo" && AUTOGLM_LAB_HEADLESS=1 python "$ROOT/scripts/peakmem.py" --limit-mib "$LIMIT_MIB" \
    --record "$ROOT/artifacts/binder-check.txt" -- python -m pytest notebooks -q -p no:cacheprovider)
echo "== binder-check passed: $(cat "$ROOT/artifacts/binder-check.txt")"

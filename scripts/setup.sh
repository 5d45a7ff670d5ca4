#!/usr/bin/env bash
# Set up everything autoglm_lab needs in ./.venv (idempotent; fast when already done).
#   scripts/setup.sh          runtime + test/dev tools
# Environment: PYTHON (default python3), AUTOGLM_TORCH (torch requirement to install first).
set -euo pipefail
cd "$(dirname "$0")/.."
# Set-up must not change tracked files (what it generates is gitignored): in a git checkout, note
# which tracked files differ from HEAD now, with their contents' hashes, and compare at the end.
tracked_changes() {  # "hash path" per tracked file that differs from HEAD ("deleted" for a missing one)
  git diff --name-only -z HEAD -- | while IFS= read -r -d '' f; do
    if [ -e "$f" ]; then echo "$(git hash-object -- "$f") $f"; else echo "deleted $f"; fi
  done | LC_ALL=C sort
}
CHECK_TREE=0
if command -v git >/dev/null 2>&1 && git rev-parse --verify -q HEAD >/dev/null 2>&1 \
    && [ -z "$(git rev-parse --show-prefix 2>/dev/null)" ]; then  # this folder is a checkout's root
  CHECK_TREE=1
  TRACKED_BEFORE=$(tracked_changes)
fi
PY=${PYTHON:-python3}
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
# torch first: without a GPU take the CPU build (a bare 'torch' pulls GBs of CUDA packages).
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    TORCH_REQ=${AUTOGLM_TORCH:-"torch>=2.2,<3"}
    $PIP install "$TORCH_REQ"
  else
    TORCH_REQ=${AUTOGLM_TORCH:-"torch==2.13.0"}
    # the CPU wheel: found locally where one is provided (find-links), else from the CPU index
    $PIP install "$TORCH_REQ" 2>/dev/null || $PIP install "$TORCH_REQ" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
# the package itself (editable) with its test and dev tools; the build hooks compile the pool's C
# core (hatch_build.py; AUTOGLM_LAB_REQUIRE_CORE=1 makes a compiler failure fatal, as CI does) and
# bundle js/ with npm
# with Triton where it has wheels (Linux): the compactor's GPU kernel, tested interpreted on a CPU
EXTRAS=dev
if [ "$(uname -s)" = Linux ]; then EXTRAS=dev,gpu; fi
# Nothing is reinstalled unless something the install depends on changed (`make lab` then starts in
# seconds): the stamp hashes the package's metadata, build hooks, C core and front-end sources.
STAMP="$VENV/.autoglm_lab-setup"
stamp() {
  { echo "$EXTRAS ${AUTOGLM_LAB_REQUIRE_CORE:-}"; "$VENV/bin/python" -c "import sys; print(sys.version)";
    cat pyproject.toml hatch_build.py autoglm_lab/pool/_core.c js/package.json js/package-lock.json js/build.mjs;
    find js/src -name '*.js' ! -name '*.test.js' -print0 | LC_ALL=C sort -z | xargs -0 cat; } | sha256sum | cut -d' ' -f1
}
WANT=$(stamp)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -f autoglm_lab/widget/static/pagemap.js ] \
    && "$VENV/bin/python" -c "import autoglm_lab" 2>/dev/null; then
  echo "setup: up to date (nothing it depends on changed; delete $STAMP to reinstall)"
else
  rm -f "$STAMP"
  $PIP install -e ".[$EXTRAS]" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true
fi
# the dashboard's front end: the build hook (hatch-jupyter-builder) bundles js/ into
# autoglm_lab/widget/static/ during the install above; build it here when that was skipped
# (HATCH_JUPYTER_BUILDER_SKIP_NPM=1, or an install that found the bundle up to date but missing)
if [ ! -f autoglm_lab/widget/static/pagemap.js ] || [ ! -f autoglm_lab/widget/static/heatmap.js ] \
    || [ ! -f autoglm_lab/widget/static/trace.js ]; then
  (cd js && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)
fi
"$VENV/bin/python" -c "import autoglm_lab, torch; from autoglm_lab.pool import _impl; print('autoglm_lab', autoglm_lab.__version__, '| pool core', _impl.IMPL, _impl.REASON, '| torch', torch.__version__, '| cuda', torch.cuda.is_available())"
if [ "$EXTRAS" = dev,gpu ]; then  # a missing Triton fails here, not as skipped tests
  "$VENV/bin/python" -c "import triton; print('triton', triton.__version__)"
fi
echo "$WANT" > "$STAMP"  # only once everything above worked
if [ "$CHECK_TREE" = 1 ]; then
  TRACKED_AFTER=$(tracked_changes)
  if [ "$TRACKED_AFTER" = "$TRACKED_BEFORE" ]; then
    echo "setup: tracked files are as set-up found them"
  else
    # a line in one list only: a file set-up changed (or put back); the path follows the hash
    changed=()
    while IFS= read -r f; do
      if [ -n "$f" ]; then changed+=("$f"); fi
    done < <(LC_ALL=C comm -3 <(echo "$TRACKED_BEFORE") <(echo "$TRACKED_AFTER") | cut -d' ' -f2- | LC_ALL=C sort -u)
    echo "setup: set-up changed tracked files (it must leave them as committed; gitignore what it generates):" >&2
    printf '  %s\n' "${changed[@]}" >&2
    git --no-pager diff --stat HEAD -- "${changed[@]}" >&2 || true
    case "${CI:-}" in ""|0|false) ;; *) exit 1 ;; esac  # fatal in CI; a warning on a developer's machine
  fi
fi

"""Build hooks: compile the pool's C core (autoglm_lab/pool/_core.c) next to its sources, and the
front end's build function (`npm_ci_builder`, run by hatch-jupyter-builder: see pyproject.toml).

Runs on every build and editable install (``pip install -e .``, scripts/setup.sh). Uses setuptools'
compiler machinery for portability. Without a working C compiler the build still succeeds and the
pool runs on its pure-Python core (autoglm_lab/pool/_pycore.py), unless AUTOGLM_LAB_REQUIRE_CORE=1
(CI sets it, so a broken build cannot hide behind the fallback).
"""

from __future__ import annotations

import hashlib
import os
import sys
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("autoglm_lab/pool/_core.c")


class CoreBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name not in ("wheel", "editable") and version != "editable":
            return
        root = Path(self.root)
        src = root / SOURCE
        out = src.with_name("_core" + sysconfig.get_config_var("EXT_SUFFIX"))
        try:
            self._compile(root, src, out)
        except Exception as exc:  # any compiler failure means: fall back, loudly
            if os.environ.get("AUTOGLM_LAB_REQUIRE_CORE", "") not in ("", "0"):
                raise
            self.app.display_warning(f"autoglm_lab: C core not built ({exc}); the pool uses its Python core")
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["artifacts"].append(str(out.relative_to(root)))

    def _compile(self, root: Path, src: Path, out: Path) -> None:
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext

        digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
        ext = Extension("autoglm_lab.pool._core", [str(src.relative_to(root))],
                        define_macros=[("CORE_SOURCE_HASH", f'"{digest}"')],
                        extra_compile_args=["-O2"] if sys.platform != "win32" else [])
        dist = Distribution({"name": "autoglm_lab", "ext_modules": [ext]})
        cmd = build_ext(dist)
        cmd.inplace = True
        cmd.build_temp = str(root / "build" / "core")
        cmd.ensure_finalized()
        cwd = os.getcwd()
        os.chdir(root)
        try:
            cmd.run()
        finally:
            os.chdir(cwd)
        if not out.exists():
            raise RuntimeError(f"compiler produced no {out.name}")


def npm_ci_builder(target_name: str, version: str, path: str = ".", build_dir: str | None = None,
                   source_dir: str | None = None, build_cmd: str = "build", npm: str | list[str] = "npm",
                   force: bool = False) -> None:
    """hatch-jupyter-builder's ``npm_builder`` with ``npm ci`` where it runs ``npm install``.

    ``npm install`` may rewrite the committed js/package-lock.json; ``npm ci`` installs exactly what it
    locks (and fails when package.json disagrees with it). It reinstalls only when node_modules is
    missing or older than the lock. Skipped like npm_builder: HATCH_JUPYTER_BUILDER_SKIP_NPM=1, or
    when the bundle in ``build_dir`` is newer than ``source_dir``.
    """
    from hatch_jupyter_builder.utils import is_stale, normalize_cmd, run

    if os.environ.get("HATCH_JUPYTER_BUILDER_SKIP_NPM") == "1":
        return
    if build_dir and source_dir and not force and not is_stale(build_dir, source_dir):
        return
    js = Path(path).resolve()
    cmd = normalize_cmd([npm] if isinstance(npm, str) else npm)
    installed = js / "node_modules" / ".package-lock.json"  # npm's record of what it installed
    lock = js / "package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
        run([*cmd, "ci", "--no-audit", "--no-fund"], cwd=str(js))
    if build_cmd:
        run([*cmd, "run", build_cmd], cwd=str(js))

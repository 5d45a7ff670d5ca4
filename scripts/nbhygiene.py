#!/usr/bin/env python3
"""Keep the teaching notebooks readable in git and checkable by nbval.

A committed notebook holds no execution counts and no outputs, except in cells marked
``# NBVAL_CHECK_OUTPUT``: their outputs are the reference nbval compares against (``--nbval-lax``
checks those cells only), so they must be short, deterministic text (stdout only; no widget views,
images, timings or addresses). nbval ignores the stored output of a cell whose execution count is
null (and fails it as an "unrun reference cell"), so checked cells keep a constant count of 1.

    scripts/nbhygiene.py check  [NOTEBOOK ...]   exit 1 and list the problems of dirty notebooks
    scripts/nbhygiene.py strip  [NOTEBOOK ...]   drop everything but the checked cells' stdout
    scripts/nbhygiene.py record [NOTEBOOK ...]   execute headless (AUTOGLM_LAB_HEADLESS=1), then strip:
                                                 refreshes the reference outputs after a deliberate change

Without NOTEBOOK arguments every ``notebooks/*.ipynb`` is processed.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import nbformat

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")  # what a repr with a memory address prints

CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
CHECKED_COUNT = 1  # the execution count every checked cell is stored with
HEADLESS_ENV = "AUTOGLM_LAB_HEADLESS"
ROOT = Path(__file__).resolve().parents[1]
# cell metadata JupyterLab may add that says nothing about the content
_VOLATILE_CELL_META = ("execution", "collapsed", "scrolled", "jupyter", "ExecuteTime")


def is_checked(cell: Any) -> bool:
    """A code cell nbval compares (a line starting with the marker comment)."""
    return cell.cell_type == "code" and any(
        line.strip() == CHECK_MARK for line in cell.source.splitlines())


def problems(nb: Any) -> list[str]:
    """What makes a notebook unfit to commit (empty when clean)."""
    out: list[str] = []
    if "widgets" in nb.metadata:
        out.append("notebook metadata holds saved widget state")
    for i, cell in enumerate(nb.cells):
        where = f"cell {i}"
        if cell.cell_type != "code":
            continue
        want = CHECKED_COUNT if is_checked(cell) and cell.outputs else None
        if cell.get("execution_count") != want:
            out.append(f"{where}: execution_count {cell.get('execution_count')} (should be {want})")
        for key in _VOLATILE_CELL_META:
            if key in cell.metadata:
                out.append(f"{where}: volatile cell metadata {key!r}")
        if not is_checked(cell):
            if cell.outputs:
                out.append(f"{where}: {len(cell.outputs)} output(s) in a cell that is not {CHECK_MARK}")
            continue
        if not cell.outputs:
            out.append(f"{where}: checked cell has no reference output (run scripts/nbhygiene.py record)")
        for o in cell.outputs:
            if o.output_type != "stream" or o.get("name") != "stdout":
                out.append(f"{where}: checked cell has a {o.output_type} output "
                           f"{o.get('name', '')}; print plain text only")
            elif _ADDRESS.search(o.text):
                out.append(f"{where}: checked output looks like it holds a memory address")
    return out


def strip(nb: Any) -> Any:
    """Clear counts, volatile metadata and every output but the checked cells' stdout (in place)."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for key in _VOLATILE_CELL_META:
            cell.metadata.pop(key, None)
        if is_checked(cell):
            kept = [o for o in cell.outputs if o.output_type == "stream" and o.get("name") == "stdout"]
            text = "".join(o.text for o in kept)
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)] if text else []
        else:
            cell.outputs = []
        cell.execution_count = CHECKED_COUNT if cell.outputs else None
    return nb


def execute(nb: Any, path: Path, timeout_s: int = 300) -> Any:
    from nbclient import NotebookClient

    os.environ[HEADLESS_ENV] = "1"
    NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def _paths(args: list[str]) -> list[Path]:
    return [Path(a) for a in args] if args else sorted((ROOT / "notebooks").glob("*.ipynb"))


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("check", "strip", "record"):
        sys.stderr.write(__doc__ or "")
        return 2
    cmd, paths = argv[0], _paths(argv[1:])
    bad = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if cmd == "check":
            found = problems(nb)
            for p in found:
                sys.stdout.write(f"{path}: {p}\n")
            bad += bool(found)
            continue
        if cmd == "record":
            execute(nb, path)
        nbformat.write(strip(nb), path)
        sys.stdout.write(f"{cmd}: {path}\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

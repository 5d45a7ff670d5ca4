"""The teaching notebooks as committed: outputs stripped (bar the checked cells' reference text),
no execution counts, wired for nbval, and a checker that really catches a dirty notebook."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["01_quickstart.ipynb", "02_fragmentation_anatomy.ipynb", "03_compaction_and_triggers.ipynb",
            "04_why_serving_slows_down.ipynb", "06_your_own_snapshot.ipynb"]


def _hygiene() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nbhygiene", ROOT / "scripts" / "nbhygiene.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("nbhygiene", mod)
    spec.loader.exec_module(mod)
    return mod


hy = _hygiene()


def test_the_four_notebooks_exist() -> None:
    assert [p.name for p in NOTEBOOKS if p.name in EXPECTED] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert hy.problems(nb) == [], f"run: scripts/nbhygiene.py strip {path.relative_to(ROOT)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_checked_cells_and_a_headless_switch(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    checked = [c for c in nb.cells if hy.is_checked(c)]
    assert len(checked) >= 3, "key figures belong in cells marked # NBVAL_CHECK_OUTPUT"
    assert all(c.outputs for c in checked), "every checked cell needs its reference output"
    source = "\n".join(c.source for c in nb.cells)
    assert hy.HEADLESS_ENV in source, "say how the notebook behaves headless"


def _dirty_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    plain = nbformat.v4.new_code_cell("print(1)", execution_count=3)
    plain.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    checked = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nx", execution_count=4)
    checked.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "<obj at 0x7f3a2c>"},
                                              execution_count=4),
                       nbformat.v4.new_output("stream", name="stdout", text="42\n"),
                       nbformat.v4.new_output("stream", name="stdout", text="<Block at 0x7f3a2c10>\n"),
                       nbformat.v4.new_output("stream", name="stderr", text="warning\n")]
    checked.metadata["execution"] = {"iopub.status.busy": "2024-01-01"}
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), plain, checked]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    return nb


def test_checker_flags_outputs_counts_and_rich_checked_output() -> None:
    found = "\n".join(hy.problems(_dirty_notebook()))
    assert "cell 1: execution_count 3" in found
    assert "cell 1: 1 output(s) in a cell that is not" in found
    assert "cell 2: execution_count 4 (should be 1)" in found
    assert "cell 2: checked cell has a execute_result output" in found
    assert "stderr" in found
    assert "memory address" in found
    assert "volatile cell metadata 'execution'" in found
    assert "widget state" in found


def test_strip_keeps_only_the_checked_stdout() -> None:
    nb = hy.strip(_dirty_notebook())
    # stripping cannot fix a checked cell that prints an address: that is left for the checker to flag
    assert [p.split(": ", 1)[1] for p in hy.problems(nb)] == ["checked output looks like it holds a memory address"]
    plain, checked = nb.cells[1], nb.cells[2]
    assert plain.outputs == [] and plain.execution_count is None
    assert [o.text for o in checked.outputs] == ["42\n<Block at 0x7f3a2c10>\n"]
    assert checked.execution_count == hy.CHECKED_COUNT

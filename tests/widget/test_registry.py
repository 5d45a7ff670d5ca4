"""One registry, read everywhere: the front end's constants are the Python registries, written out."""

from __future__ import annotations

import re
from pathlib import Path

import autoglm_lab as al
from autoglm_lab.pool import COMPACT_REASONS, EventKind
from autoglm_lab.widget import COLOR_MODES, Dashboard
from autoglm_lab.widget._heatmap import MARK_COMPACT, MARK_FAIL, METRICS
from autoglm_lab.widget._registry import JS_CONSTANTS, VIEW_MODULES, VIEWS, js_constants, write_js_constants
from autoglm_lab.widget._settings import CONTROLS


def test_js_constants_file_is_the_python_registries() -> None:
    assert JS_CONSTANTS.read_text(encoding="utf-8") == js_constants(), (
        "js/src/constants.js lags behind Python: run `.venv/bin/python -m autoglm_lab.widget._registry`, "
        "then `(cd js && npm run build)`")


def test_js_constants_carry_the_registries(tmp_path: Path) -> None:
    text = js_constants()
    assert '"state", "tag", "age"' in text and list(COLOR_MODES) == ["state", "tag", "age"]
    assert f'"COMPACT": {int(EventKind.COMPACT)}' in text and f'"FAIL": {int(EventKind.FAIL)}' in text
    assert f'"COMPACT": {MARK_COMPACT}, "FAIL": {MARK_FAIL}' in text
    assert all(f'"{r}"' in text for r in COMPACT_REASONS)
    assert '"PAGE_MAGIC": "PGF1"' in text and '"HEADER_BYTES": 32' in text
    out = tmp_path / "constants.js"
    assert write_js_constants(out) and not write_js_constants(out)  # rewritten only when it changed


def test_front_end_uses_no_magic_event_numbers_or_mode_lists() -> None:
    src = JS_CONSTANTS.parent
    for name in VIEW_MODULES:
        text = (src / f"{name}.js").read_text(encoding="utf-8")
        assert "from \"./constants.js\"" in text, name
        assert not re.search(r"\[\s*\"state\"\s*,\s*\"tag\"", text), name  # the modes come from COLOR_MODES
        assert not re.search(r"EVENT_\w+\s*=\s*\d", text), name           # event kinds from EVENT_KIND


def test_controls_read_their_options_from_the_registries(small_pool: al.PagedPool) -> None:
    dash = Dashboard(small_pool)
    try:
        assert list(dash.controls["color_by"].options) == list(COLOR_MODES)
        assert list(dash.controls["heat_metric"].options) == list(METRICS)
    finally:
        dash.close()


def test_every_view_and_control_is_registered_once() -> None:
    names = [v.name for v in VIEWS]
    assert len(set(names)) == len(names) and names[0] == "page_map"  # the first canvas view carries frames
    controls = [c.name for c in CONTROLS]
    assert len(set(controls)) == len(controls)
    pool_fields = set(al.PoolConfig.__dataclass_fields__)
    assert {c.name for c in CONTROLS if c.target in ("pool", "rebuild")} <= pool_fields


def test_every_page_state_has_one_colour_and_label() -> None:
    from autoglm_lab.pool import PageState
    from autoglm_lab.widget._palette import PALETTE, STATE_COLORS, STATE_LABELS, TAG_BASE, legend_for

    assert [int(s) for s in PageState] == list(range(len(PageState)))  # a state's value is its palette index
    assert len(STATE_COLORS) == len(STATE_LABELS) == len(PageState) == TAG_BASE
    assert tuple(PALETTE[:TAG_BASE]) == STATE_COLORS and len(set(STATE_COLORS)) == len(STATE_COLORS)
    assert [label for label, _ in legend_for("state")] == list(STATE_LABELS)

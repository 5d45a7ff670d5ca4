"""The front-end bundle is built from js/src at install time and must not lag behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoglm_lab.widget import FragmentationHeatmap, LatencyTrace, PageMap
from autoglm_lab.widget._assets import STATIC
from autoglm_lab.widget._registry import VIEW_MODULES

SRC = Path(__file__).resolve().parents[2] / "js" / "src"


@pytest.mark.parametrize("name", VIEW_MODULES)
def test_bundle_is_built_and_newer_than_its_sources(name: str) -> None:
    bundle = STATIC / f"{name}.js"
    assert bundle.exists(), "run scripts/setup.sh (or npm --prefix js run build) to bundle js/"
    newest = max(p.stat().st_mtime for p in SRC.glob("*.js") if not p.name.endswith(".test.js"))
    assert bundle.stat().st_mtime >= newest, f"{bundle} is older than js/src: rebuild with npm --prefix js run build"
    text = bundle.read_text(encoding="utf-8")
    assert "export" in text and "render" in text and "http" not in text.replace("http://www.w3.org", "")  # no CDN


def test_widgets_ship_the_bundle() -> None:
    for widget, magic in ((PageMap(), "PGF1"), (FragmentationHeatmap(), "HMP1"), (LatencyTrace(), "LTR1")):
        assert magic in widget._esm  # the codec is inside the module anywidget loads

"""The view protocol, the control table, the device the pool lives on and the compaction executor."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import ipywidgets as w
import pytest
import torch

import autoglm_lab as al
from autoglm_lab.widget import Dashboard
from autoglm_lab.widget import _dashboard as dashboard_module
from autoglm_lab.widget._controls import FixedHTML
from autoglm_lab.widget._format import format_bytes
from autoglm_lab.widget._settings import CONTROLS
from autoglm_lab.widget._stats import StatsView, device_label, device_memory, device_rows
from autoglm_lab.widget._view import DashboardView, ViewContext, ViewSetup

from .test_dashboard import fragmented_pool


class Recorder(DashboardView):
    """A view added by one registration: records what the dashboard hands it."""

    name = "recorder"
    row = 1

    def __init__(self, setup: ViewSetup) -> None:
        self.widget = FixedHTML("recorder")
        self.seen: list[ViewContext] = []
        self.resets = 0
        self.closed = False

    def update(self, ctx: ViewContext) -> None:
        self.seen.append(ctx)

    def reset(self) -> None:
        self.resets += 1

    def close(self) -> None:
        self.closed = True
        super().close()


def test_a_view_takes_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dashboard_module, "VIEWS", (*dashboard_module.VIEWS, Recorder))
    pool, live = fragmented_pool()
    dash = Dashboard(pool)
    rec = dash.view("recorder")
    assert isinstance(rec, Recorder)
    assert any(rec.widget in getattr(row, "children", ()) for row in dash.children)  # placed in its row
    assert len(rec.seen) == 1 and rec.seen[0].fresh and rec.seen[0].snapshot.seq == pool.seq
    dash.run(2)
    assert len(rec.seen) == 3 and rec.seen[-1].time_s == rec.seen[-1].snapshot.time_s  # no simulator: pool time
    dash.page_map._on_custom(dash.page_map, {"action": "select", "page": live[0].first_page}, [])
    last = rec.seen[-1]
    assert not last.fresh and last.text and last.selected is not None and last.selected["block_id"] == live[0].id
    dash.reset()
    assert rec.resets == 1
    dash.close()
    assert rec.closed


def test_header_names_the_device(small_pool: al.PagedPool) -> None:
    dash = Dashboard(small_pool)
    assert "pool on cpu" in dash.header.value
    dash.close()


def test_device_label_and_memory_on_cuda_use_torch_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_cuda(*_a: object) -> None:
        raise AssertionError("torch.cuda was queried for a CPU pool")

    for name in ("get_device_name", "mem_get_info", "memory_reserved", "memory_allocated", "current_device"):
        monkeypatch.setattr(torch.cuda, name, no_cuda)
    assert device_label("cpu") == "cpu" and device_memory("cpu") is None and device_memory("meta") is None
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"NVIDIA H200 #{i}")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda dev: (100 * 2**30, 140 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda dev: 64 * 2**20)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda dev: 3 * 2**19)
    assert device_label("cuda:1") == "cuda:1 (NVIDIA H200 #1)" and device_label("cuda") == "cuda:0 (NVIDIA H200 #0)"
    assert device_memory("cuda:0") == {"reserved": 64 * 2**20, "allocated": 3 * 2**19, "free": 100 * 2**30,
                                       "total": 140 * 2**30}


def test_device_rows_format_a_fake_device() -> None:
    mem = {"reserved": 64 * 2**20, "allocated": 3 * 2**19, "free": 100 * 2**30, "total": 140 * 2**30}
    assert device_rows(mem) == [("torch reserved", "64.0 MiB"), ("torch allocated", "1.5 MiB"),
                                ("device used", "40.0 GiB of 140.0 GiB (29%)")]
    assert device_rows({"reserved": 0, "allocated": 0, "free": 0, "total": 0})[2] == ("device used", "0 B of 0 B (0%)")


def test_stats_show_the_device_memory_only_on_cuda(small_pool: al.PagedPool, monkeypatch: pytest.MonkeyPatch) -> None:
    view = StatsView(None)  # type: ignore[arg-type]
    snap = small_pool.snapshot()
    view.update(ViewContext(snapshot=snap, time_s=snap.time_s))
    assert "capacity" in view.widget.value and "torch reserved" not in view.widget.value
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda dev: (6 * 2**30, 8 * 2**30))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda dev: 2**20)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda dev: 2**10)
    view.update(ViewContext(snapshot=dataclasses.replace(snap, device="cuda:0"), time_s=snap.time_s))
    for text in ("torch reserved", "1.0 MiB", "torch allocated", "1.0 KiB", "2.0 GiB of 8.0 GiB (25%)"):
        assert text in view.widget.value
    shown = view.widget.value
    view.update(ViewContext(snapshot=snap, time_s=snap.time_s, text=False))  # text only when the frame says so
    assert view.widget.value == shown


def test_status_line_shows_the_last_compactions_executor() -> None:
    pool, _ = fragmented_pool()
    dash = Dashboard(pool)
    assert "executor" not in dash.status.value
    report = dash.compact_now()
    executor = getattr(report, "executor", None)  # a field the compactor adds; shown when it is there
    assert (f"executor: {executor}" in dash.status.value) == bool(executor)
    dash._last_compaction = SimpleNamespace(pages_moved=1, pause_s=0.0, executor="triton")
    dash._refresh_text()
    assert "executor: triton" in dash.status.value
    dash._last_compaction = SimpleNamespace(pages_moved=1, pause_s=0.0)  # a report from before the field
    dash._refresh_text()
    assert "executor" not in dash.status.value
    dash.reset()
    assert "executor" not in dash.status.value
    dash.close()


def test_control_table_is_what_the_dashboard_shows(small_pool: al.PagedPool, caplog: pytest.LogCaptureFixture) -> None:
    dash = Dashboard(small_pool)
    assert list(dash.controls) == [c.name for c in CONTROLS]
    for c in CONTROLS:
        if c.target == "action":
            assert not dash.set(c.name, True)  # buttons are not settings
        else:
            assert dash.set(c.name, dash.controls[c.name].value)  # its own value: accepted
    assert dash.controls["kv_layout"].disabled and dash.controls["steps_per_frame"].disabled  # no simulator
    assert not dash.controls["fit"].disabled
    dash.close()


def test_kernel_side_arguments_are_checked_by_the_widgets_helpers(small_pool: al.PagedPool) -> None:
    with pytest.raises(ValueError, match=r"fps=0 is not allowed: 0 is outside \[1, 60\]"):
        Dashboard(small_pool, fps=0)
    dash = Dashboard(small_pool)
    before = small_pool.seq
    for kwargs, match in (({"steps": -1}, "steps=-1 is not allowed: -1 is below 0"),
                          ({"steps": True}, "steps=True is not allowed"),
                          ({"steps": 1, "frame_every": 0}, "frame_every=0 is not allowed")):
        with pytest.raises(ValueError, match=match):
            dash.run(**kwargs)
    assert small_pool.seq == before
    dash.close()


def test_one_byte_formatter_also_for_the_hover_tooltip(small_pool: al.PagedPool) -> None:
    assert [format_bytes(n) for n in (0, 512, 1536, 64 * 2**20, 2**50)] == [
        "0 B", "512 B", "1.5 KiB", "64.0 MiB", "1024.0 TiB"]
    block = small_pool.alloc_bytes(6000)
    from autoglm_lab.widget import PageMap

    pm = PageMap(small_pool)
    pm.refresh()
    reply = pm.block_at(block.first_page)
    assert reply["nbytes"] == 6000 and reply["size"] == "5.9 KiB"  # the tooltip shows the kernel's text


def test_every_control_explains_itself_and_greys_out_where_it_does_nothing(small_pool: al.PagedPool) -> None:
    dash = Dashboard(small_pool)
    for c in CONTROLS:
        assert len(c.help) > 20, f"{c.name} has no tooltip"
        assert dash.controls[c.name].tooltip.startswith(c.help)
    eager_only = ("fragmentation_threshold_factor", "compaction_budget_bytes")
    on_only = ("free_ratio_trigger", "max_consecutive_failures")
    sim_only = ("kv_layout", "cache_reuse_strategy", "request_rate_scale", "pace", "steps_per_frame", "at_end")

    def disabled(names: tuple[str, ...]) -> list[bool]:
        return [dash.controls[n].disabled for n in names]

    assert small_pool.config.compaction == "lazy"
    assert disabled(eager_only) == [True, True] and disabled(on_only) == [False, False]
    assert "no effect now: compaction is 'lazy'" in dash.controls["fragmentation_threshold_factor"].tooltip
    assert all(disabled(sim_only)) and "needs a simulator" in dash.controls["pace"].tooltip
    dash.set("compaction", "eager")
    assert disabled(eager_only) == [False, False] and disabled(on_only) == [False, False]
    assert "no effect now" not in dash.controls["compaction_budget_bytes"].tooltip
    dash.controls["compaction"].set_state({"index": list(dash.controls["compaction"].options).index("off")})
    assert disabled(eager_only) == [True, True] and disabled(on_only) == [True, True]
    assert not any(disabled(("compaction_strategy", "compact", "fit", "coalesce", "color_by", "fps")))
    assert dash.set("fragmentation_threshold_factor", 0.2)  # greyed out, still a setting for later
    dash.close()


def test_the_dashboard_follows_the_notebooks_width() -> None:
    pool, _ = fragmented_pool()
    dash = Dashboard(pool)
    assert dash.layout.width == "100%"
    rows = [c for c in dash.children if isinstance(c, w.Box)]
    assert all(r.layout.flex_flow == "row wrap" for r in rows[:-1])  # the bar and the view rows wrap
    assert "auto-fit" in rows[-1].layout.grid_template_columns  # the control panels too
    for name in ("page_map", "heatmap", "trace"):
        assert dash.view(name).widget.layout.min_width == "0"
    for c in CONTROLS:
        if c.panel != "bar":
            assert "px" not in str(dash.controls[c.name].layout.width or ""), c.name
    dash.close()

"""Every comm message a front end can send to a dashboard widget, malformed ones included, is either
accepted or refused by our own checks (a warning from ``autoglm_lab.widget``), never by an exception
inside ipywidgets' handlers; a refused message leaves the widgets, the pool and the simulator as they were."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import ipywidgets as w
import pytest

import autoglm_lab as al
from autoglm_lab.widget import Dashboard

from .conftest import Outbox

NAN, INF = float("nan"), float("inf")


def tiny_sim() -> tuple[al.PagedPool, Any]:
    from autoglm_lab.workload import ServingConfig, ServingSim, synthetic_requests

    pool = al.PagedPool(al.PoolConfig(page_size="16KiB", memory_pool_initial_size="1MiB", max_size="1MiB",
                                      device="cpu"))
    sim = ServingSim(pool, ServingConfig(kv_layout="contiguous", cache_reuse_strategy="lru"),
                     requests=synthetic_requests(30, rate_per_s=50.0, seed=2))
    return pool, sim


@pytest.fixture(scope="module")
def dash() -> Iterator[Dashboard]:
    pool, sim = tiny_sim()
    d = Dashboard(pool, sim)
    d.run(5)
    yield d
    d.close()


def widgets_of(dash: Dashboard) -> dict[str, w.Widget]:
    """Every widget the dashboard shows (itself, containers, labels, views, controls)."""
    found: dict[str, w.Widget] = {}

    def walk(widget: w.Widget) -> None:
        name = f"{type(widget).__name__}:{getattr(widget, 'description', '')}:{widget.model_id[:6]}"
        found[name] = widget
        for child in getattr(widget, "children", ()):
            walk(child)

    walk(dash)
    assert {dash.page_map, dash.heatmap, dash.trace, dash.stats, dash.status, *dash.controls.values()} \
        <= set(found.values())
    return found


def comm_msg(data: Any, buffers: list[bytes] | None = None) -> dict[str, Any]:
    return {"content": {"comm_id": "x", "data": data}, "buffers": buffers or []}


def state_of(dash: Dashboard, widget: w.Widget) -> tuple[Any, ...]:
    return (widget.get_state(), dash.pool.config, dash.pool.seq, dash.sim.config, dash.sim.steps,
            list(dash.page_map.selection), dash.playing)


def deliver(dash: Dashboard, caplog: pytest.LogCaptureFixture, handle: Any) -> None:
    """Call ``handle(widget)`` for every widget; each must log a refusal and change nothing."""
    failures = []
    for name, widget in widgets_of(dash).items():
        before = state_of(dash, widget)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            handle(widget)
        ours = [r for r in caplog.records if r.name == "autoglm_lab.widget" and "refused" in r.getMessage()]
        caught = [r for r in caplog.records if "Exception in widget method" in r.getMessage()]
        if not ours or caught or state_of(dash, widget) != before:
            failures.append((name, [r.getMessage()[:160] for r in caplog.records]))
    assert not failures, failures


# envelopes that break the widget protocol (ipywidgets would raise on, or silently drop, most of them)
BAD_ENVELOPES = [
    pytest.param(5, id="data-int"),
    pytest.param(None, id="data-none"),
    pytest.param(["update", {"value": 1}], id="data-list"),
    pytest.param("update", id="data-str"),
    pytest.param({"state": {"value": 0.5}}, id="no-method"),
    pytest.param({"method": 3, "state": {}}, id="method-int"),
    pytest.param({"method": "explode"}, id="method-unknown"),
    pytest.param({"method": "update"}, id="update-without-state"),
    pytest.param({"method": "update", "state": [1, 2]}, id="state-list"),
    pytest.param({"method": "update", "state": 7}, id="state-int"),
    pytest.param({"method": "update", "state": "value"}, id="state-str"),
    pytest.param({"method": "update", "state": None}, id="state-none"),
    pytest.param({"method": "update", "state": {"value": 0.5}, "extra": 1}, id="update-extra-field"),
    pytest.param({"method": "update", "state": {}, "buffer_paths": "value"}, id="buffer-paths-str"),
    pytest.param({"method": "update", "state": {}, "buffer_paths": [["x", "y"]]}, id="buffer-path-nowhere"),
    pytest.param({"method": "update", "state": {}, "buffer_paths": [[]]}, id="buffer-path-empty"),
    pytest.param({"method": "update", "state": {}, "buffer_paths": [["a"], ["b"]]}, id="more-paths-than-buffers"),
    pytest.param({"method": "custom"}, id="custom-without-content"),
    pytest.param({"method": "request_state", "state": {}}, id="request-state-with-state"),
]


@pytest.mark.parametrize("data", BAD_ENVELOPES)
def test_malformed_envelopes_are_refused_by_every_widget(dash: Dashboard, caplog: pytest.LogCaptureFixture,
                                                         data: Any) -> None:
    deliver(dash, caplog, lambda widget: widget._handle_msg(comm_msg(data, [b"\x00"])))


@pytest.mark.parametrize("msg", [5, None, {"content": 5}, {"content": {"data": {"method": "update"}}}])
def test_malformed_comm_messages_are_refused(dash: Dashboard, caplog: pytest.LogCaptureFixture, msg: Any) -> None:
    deliver(dash, caplog, lambda widget: widget._handle_msg(msg))


# states no widget of the dashboard accepts: unknown keys, wrong value types, out of range, NaN
BAD_STATES = [
    pytest.param({"nope": 1}, id="unknown-key"),
    pytest.param({"children": []}, id="children"),
    pytest.param({"description": "hacked"}, id="description"),
    pytest.param({"disabled": True}, id="disabled"),
    pytest.param({"value": NAN}, id="value-nan"),
    pytest.param({"value": INF}, id="value-inf"),
    pytest.param({"value": -INF}, id="value-minus-inf"),
    pytest.param({"value": 10**30}, id="value-huge"),
    pytest.param({"value": [0.5]}, id="value-list"),
    pytest.param({"value": {"v": 0.5}}, id="value-object"),
    pytest.param({"value": None}, id="value-none"),
    pytest.param({"value": "0.5"}, id="value-str"),
    pytest.param({"index": 10**9}, id="index-beyond"),
    pytest.param({"index": -1}, id="index-negative"),
    pytest.param({"index": 1.5}, id="index-float"),
    pytest.param({"index": NAN}, id="index-nan"),
    pytest.param({"index": True}, id="index-bool"),
    pytest.param({"index": [0]}, id="index-list"),
    pytest.param({"value": NAN, "index": 0}, id="mixed"),
]


@pytest.mark.parametrize("state", BAD_STATES)
def test_bad_states_in_update_messages_are_refused_by_every_widget(dash: Dashboard, caplog: pytest.LogCaptureFixture,
                                                                   state: dict[str, Any]) -> None:
    deliver(dash, caplog,
            lambda widget: widget._handle_msg(comm_msg({"method": "update", "state": state, "buffer_paths": []})))


@pytest.mark.parametrize("state", [5, None, [("value", 0.5)], "value", {1: 2}, {("value",): 0.5}])
def test_set_state_with_a_non_object_is_refused_by_every_widget(dash: Dashboard, caplog: pytest.LogCaptureFixture,
                                                                state: Any) -> None:
    deliver(dash, caplog, lambda widget: widget.set_state(state))


@pytest.mark.parametrize("content", [
    None, 5, "select", ["select", 3], {}, {"action": None},
    {"action": "select", "page": NAN}, {"action": "select", "page": INF}, {"action": "select", "page": -1},
    {"action": "select", "page": 10**9}, {"action": "select", "page": "3"}, {"action": "select", "page": [3]},
    {"action": "hover", "page": NAN}, {"action": "hover", "page": 1.0}, {"action": "color_by", "value": None},
    {"event": "dblclick"}, {"event": "click", "x": 1},
])
def test_bad_custom_messages_are_refused_by_every_widget(dash: Dashboard, caplog: pytest.LogCaptureFixture,
                                                         content: Any) -> None:
    outbox = Outbox()
    dash.page_map.send = outbox  # hover replies and frames would land here
    deliver(dash, caplog, lambda widget: widget._handle_msg(comm_msg({"method": "custom", "content": content})))
    assert outbox.sent == []


def test_page_beyond_the_pool_is_refused(dash: Dashboard, caplog: pytest.LogCaptureFixture) -> None:
    pm = dash.page_map
    n = dash.pool.capacity_pages
    assert pm.num_pages == n
    with caplog.at_level(logging.WARNING, logger="autoglm_lab.widget"):
        pm._handle_msg(comm_msg({"method": "custom", "content": {"action": "select", "page": n}}))
    assert f"outside [0, {n - 1}]" in caplog.text
    assert pm.selection == []


def test_well_formed_messages_still_work() -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim)
    try:
        slider = dash.controls["free_ratio_trigger"]
        slider._handle_msg(comm_msg({"method": "update", "state": {"value": 0.4}, "buffer_paths": []}))
        assert pool.config.free_ratio_trigger == 0.4
        fit = dash.controls["fit"]
        fit._handle_msg(comm_msg({"method": "update", "state": {"index": fit.options.index("first")},
                                  "buffer_paths": []}))
        assert pool.config.fit == "first"
        dash.controls["step"]._handle_msg(comm_msg({"method": "custom", "content": {"event": "click"}}))
        assert sim.steps == 1
        dash.controls["step"]._handle_msg(comm_msg({"method": "request_state"}))
        blk = pool.alloc_bytes(3 * pool.page_size, tag="mine")
        dash.frame()
        dash.page_map._handle_msg(comm_msg({"method": "custom",
                                            "content": {"action": "select", "page": blk.first_page + 1}}))
        assert dash.page_map.selection == [blk.id, blk.first_page, 3]
        assert f"selected block {blk.id}" in dash.stats.value
    finally:
        dash.close()

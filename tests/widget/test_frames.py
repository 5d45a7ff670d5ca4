"""What a frame costs on the wire: trace append frames (exact bytes) and one comm message per
dashboard frame (the heatmap's and trace's frames ride on the page map's comm)."""

from __future__ import annotations

import struct
import threading

import numpy as np
import pytest

from autoglm_lab.widget import Dashboard, LatencyTrace, decode_page_frame, palette_indices
from autoglm_lab.widget._base import FrameBus
from autoglm_lab.widget._trace import window_from_steps

from .conftest import Outbox
from .test_dashboard import tiny_sim

NAN32 = struct.pack("<f", np.float32(np.nan))


def window(times: list[float], step: list[float], alloc: list[float], pause: list[float],
           ev_t: list[float], ev_k: list[int]) -> dict[str, np.ndarray]:
    return {"time_s": np.array(times), "step_s": np.array(step, np.float32), "alloc_s": np.array(alloc, np.float32),
            "pause_s": np.array(pause, np.float32), "event_time_s": np.array(ev_t, np.float64),
            "event_kind": np.array(ev_k, np.uint8)}


nan = float("nan")
OLD = window([1.0, 2.0, 3.0], [1e-3, 2e-3, 3e-3], [nan, 5e-6, nan], [nan, nan, 4e-4], [3.0], [5])
NEW = window([2.0, 3.0, 4.0, 5.0], [2e-3, 3e-3, 0.5, 0.25], [5e-6, nan, nan, 0.125], [nan, 4e-4, nan, nan],
             [3.0, 5.0], [5, 2])


def test_trace_sends_only_the_new_points_and_events_as_an_append_frame(outbox: Outbox) -> None:
    lt = LatencyTrace()
    lt.send = outbox
    full = lt.update(OLD)
    assert full[:16] == b"LTR1" + struct.pack("<III", 3, 1, 0)  # 3 points, 1 event, kind 0 (full)
    data = lt.update(NEW)
    # header: magic, 2 new points, 1 new event, kind 1 (append), keep 4 points and 2 events
    expected = b"LTR1" + struct.pack("<IIIII", 2, 1, 1, 4, 2)
    expected += struct.pack("<2d", 4.0, 5.0)              # time_s of the new points
    expected += struct.pack("<2f", 0.5, 0.25)             # step_s
    expected += NAN32 + struct.pack("<f", 0.125)          # alloc_s
    expected += NAN32 + NAN32                             # pause_s
    assert (24 + 20 * 2) % 8 == 0                         # no pad before the events here
    expected += struct.pack("<d", 5.0) + bytes([2])       # the new event: a failure at t=5
    assert data == expected
    assert [bufs[0] for _, bufs in outbox.of("trace")] == [full, data]
    # a view that asks gets the whole window it should now show
    lt._on_custom(lt, {"action": "request_full"}, [])
    resent = outbox.of("trace")[-1][1][0]
    assert resent == lt.full_frame() and struct.unpack_from("<III", resent, 4) == (4, 2, 0)
    assert struct.unpack_from("<4d", resent, 16) == (2.0, 3.0, 4.0, 5.0)


def test_trace_append_only_when_the_new_window_continues_the_old_one(outbox: Outbox) -> None:
    lt = LatencyTrace()
    lt.send = outbox
    lt.update(OLD)
    changed = {**NEW, "step_s": NEW["step_s"].copy()}
    changed["step_s"][1] = 9e-3  # a row the front end has, but different: not a continuation
    assert struct.unpack_from("<I", lt.update(changed), 12)[0] == 0
    restarted = window([0.5, 1.0], [1e-3, 1e-3], [nan, nan], [nan, nan], [], [])  # a reset simulator
    assert struct.unpack_from("<I", lt.update(restarted), 12)[0] == 0
    same = lt.update(restarted)  # nothing new: an empty append that keeps everything
    assert same == b"LTR1" + struct.pack("<IIIII", 0, 0, 1, 2, 0)
    lt.clear()
    assert lt.full_frame() == b"LTR1" + struct.pack("<III", 0, 0, 0)


def test_a_simulator_trace_continues_frame_after_frame() -> None:
    _, sim = tiny_sim()
    lt = LatencyTrace()
    held: dict[str, np.ndarray] | None = None
    for _ in range(30):
        for _ in range(7):
            sim.step()
        w = window_from_steps(sim.recent_steps(64, keys=("time_s", "step_latency_s", "alloc_latency_s",
                                                           "compaction_pause_s", "failures")))
        data = lt.update(w)
        n, _, kind = struct.unpack_from("<III", data, 4)
        if held is not None:
            assert kind == 1 and n == 7
        held = w
    assert lt.full_frame() == LatencyTrace().update(held)


def test_recent_steps_takes_a_subset_of_keys() -> None:
    _, sim = tiny_sim()
    for _ in range(5):
        sim.step()
    some = sim.recent_steps(3, keys=("time_s", "failures"))
    assert set(some) == {"time_s", "failures"}
    assert some["time_s"].tolist() == sim.recent_steps(3)["time_s"].tolist()
    with pytest.raises(ValueError, match="unknown keys"):
        sim.recent_steps(3, keys=("time_s", "nope"))


def test_one_comm_message_per_dashboard_frame(outbox: Outbox) -> None:
    pool, sim = tiny_sim()
    dash = Dashboard(pool, sim)
    own = Outbox()
    dash.page_map.send = outbox
    dash.heatmap.send = own
    dash.trace.send = own
    assert dash.heatmap.bus == [f"anywidget:{dash.page_map.model_id}", dash.heatmap.model_id]
    on_screen = dash.page_map._values.copy()
    dash.step()
    assert own.sent == []  # the riding views send nothing on their own comms
    assert len(outbox.sent) == 1
    content, bufs = outbox.sent[0]
    assert content == {"type": "batch", "parts": [["frame", None], ["heat", dash.heatmap.model_id],
                                                  ["trace", dash.trace.model_id]]}
    assert [b[:4] for b in bufs] == [b"PGF1", b"HMP1", b"LTR1"]
    _, pages = decode_page_frame(bufs[0], on_screen)
    assert pages.tolist() == palette_indices(pool.snapshot(), "state").tolist()
    # nothing new (the simulator did not step): no message at all, not even a heat column
    outbox.sent.clear()
    dash.frame()
    assert outbox.sent == []
    # a riding view's answer to request_full goes on the carrier's comm, tagged with its key
    outbox.sent.clear()
    dash.trace._on_custom(dash.trace, {"action": "request_full"}, [])
    assert outbox.sent == [({"type": "trace", "key": dash.trace.model_id}, [dash.trace.full_frame()])]
    dash.close()


class _Carrier:
    def __init__(self) -> None:
        self.out = Outbox()

    def send(self, content: dict, buffers: list[bytes]) -> None:
        self.out(content, buffers)


def test_frame_bus_keeps_order_and_loses_nothing_sent_from_another_thread() -> None:
    carrier = _Carrier()
    bus = FrameBus(carrier)  # type: ignore[arg-type]
    bus.send("a", None, b"1")
    with bus.batch():
        bus.send("a", None, b"2")
        t = threading.Thread(target=bus.send, args=("b", "k", b"3"))  # a reply from the comm thread
        t.start()
        t.join()
        with bus.batch():  # nested: the outer batch sends
            bus.send("b", "k", b"4")
    bus.send("b", "k", b"5")
    assert [c for c, _ in carrier.out.sent] == [
        {"type": "a"},
        {"type": "batch", "parts": [["a", None], ["b", "k"], ["b", "k"]]},
        {"type": "b", "key": "k"}]
    assert [b for _, bufs in carrier.out.sent for b in bufs] == [b"1", b"2", b"3", b"4", b"5"]

"""PageMap, heatmap and trace widgets: frames sent, actions validated, bad messages refused."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import autoglm_lab as al
from autoglm_lab.widget import FragmentationHeatmap, LatencyTrace, PageMap, decode_page_frame, palette_indices
from autoglm_lab.widget._heatmap import MARK_COMPACT, MARK_REASON_SHIFT

from .conftest import Outbox


def fragmented(pool: al.PagedPool) -> list[al.Block]:
    blocks = [pool.alloc_bytes(4096 * (1 + i % 2), tag=f"t{i % 3}") for i in range(10)]
    for b in blocks[::2]:
        pool.free(b)
    return [b for i, b in enumerate(blocks) if i % 2]


def frames(out: Outbox) -> list[bytes]:
    return [bufs[0] for _, bufs in out.of("frame")]


def test_first_frame_is_full_then_deltas_then_nothing(outbox: Outbox) -> None:
    small_pool = al.PagedPool(al.PoolConfig(page_size="4KiB", memory_pool_initial_size="1MiB", max_size="1MiB",
                                            device="cpu"))
    live = fragmented(small_pool)
    pm = PageMap(small_pool)
    pm.send = outbox
    first = pm.refresh()
    assert first is not None and first.kind == 0
    assert pm.num_pages == 256 and pm.segments == [[0, 256]]
    _, screen = decode_page_frame(frames(outbox)[-1])
    assert screen.tolist() == small_pool.snapshot().page_state.tolist()
    assert pm.refresh() is None  # nothing changed: nothing sent
    assert len(frames(outbox)) == 1
    small_pool.free(live[0])
    second = pm.refresh()
    assert second is not None and second.kind == 1 and second.base_id == first.frame_id
    fields, screen = decode_page_frame(frames(outbox)[-1], screen)
    assert screen.tolist() == small_pool.snapshot().page_state.tolist()
    assert fields["seq"] == small_pool.seq
    assert second.nbytes < 64  # a header and one short run, not 256 bytes


def test_request_full_resends_the_screen(small_pool: al.PagedPool, outbox: Outbox) -> None:
    fragmented(small_pool)
    pm = PageMap(small_pool)
    pm.send = outbox
    pm.refresh()
    pm._on_custom(pm, {"action": "request_full"}, [])
    assert [decode_page_frame(f)[0]["kind"] for f in frames(outbox)] == [0, 0]


def test_hover_and_select(small_pool: al.PagedPool, outbox: Outbox) -> None:
    live = fragmented(small_pool)
    pm = PageMap(small_pool)
    pm.send = outbox
    pm.refresh()
    target = live[1]
    pm._on_custom(pm, {"action": "hover", "page": target.first_page}, [])
    (reply, _), = outbox.of("hover")
    assert reply["block_id"] == target.id and reply["num_pages"] == target.num_pages
    assert reply["tag"] == target.tag and reply["nbytes"] == target.nbytes
    seen = []
    pm.on_select(seen.append)
    pm._on_custom(pm, {"action": "select", "page": target.first_page}, [])
    assert pm.selection == [target.id, target.first_page, target.num_pages]
    assert seen[-1]["block_id"] == target.id
    small_pool.compact()  # the selected block moves: the outline follows it
    pm.refresh()
    assert pm.selection == [target.id, target.first_page, target.num_pages]
    small_pool.free(target)
    pm.refresh()
    assert pm.selection == [] and seen[-1] is None


@pytest.mark.parametrize("message", [
    {"action": "explode"},
    {"page": 3},
    ["hover", 3],
    {"action": "hover", "page": "3"},
    {"action": "hover", "page": 3.0},
    {"action": "hover", "page": True},
    {"action": "hover", "page": 16},
    {"action": "hover", "page": -1},
    {"action": "hover"},
    {"action": "hover", "page": 1, "extra": 2},
    {"action": "select", "page": 10**9},
    {"action": "color_by", "value": "rainbow"},
    {"action": "color_by", "value": 1},
])
def test_bad_messages_are_refused_and_change_nothing(small_pool: al.PagedPool, outbox: Outbox,
                                                     caplog: pytest.LogCaptureFixture, message: object) -> None:
    fragmented(small_pool)
    pm = PageMap(small_pool)
    pm.send = outbox
    pm.refresh()
    before = (pm.color_by, list(pm.selection), len(outbox.messages), small_pool.seq, small_pool.config)
    with caplog.at_level(logging.WARNING, logger="autoglm_lab.widget"):
        pm._on_custom(pm, message, [])
    assert "refused" in caplog.text
    assert (pm.color_by, list(pm.selection), len(outbox.messages), small_pool.seq, small_pool.config) == before


def test_colour_mode_action_resends_a_full_frame(small_pool: al.PagedPool, outbox: Outbox) -> None:
    fragmented(small_pool)
    pm = PageMap(small_pool)
    pm.send = outbox
    pm.refresh()
    pm._on_custom(pm, {"action": "color_by", "value": "tag"}, [])
    assert pm.color_by == "tag"
    fields, screen = decode_page_frame(frames(outbox)[-1])
    assert fields["kind"] == 0 and fields["mode"] == 1
    assert screen.tolist() == palette_indices(small_pool.snapshot(), "tag").tolist()
    assert any(label == "t1" for label, _ in pm.legend)


def test_front_end_trait_updates_are_refused(small_pool: al.PagedPool, caplog: pytest.LogCaptureFixture) -> None:
    pm = PageMap(small_pool)
    pm.refresh()
    with caplog.at_level(logging.WARNING, logger="autoglm_lab.widget"):
        pm.set_state({"num_pages": 3, "color_by": "age"})
    assert "refused" in caplog.text
    assert pm.num_pages == 16 and pm.color_by == "state"


def test_heatmap_columns_and_compaction_marks(small_pool: al.PagedPool, outbox: Outbox) -> None:
    fragmented(small_pool)
    hm = FragmentationHeatmap(history=3)
    hm.send = outbox
    hm.update(small_pool.snapshot())
    small_pool.compact()
    col = hm.update(small_pool.snapshot())
    free = small_pool.snapshot().page_state == al.PageState.FREE
    assert col.shape == (16,) and col.tolist() == (free * 255).tolist()  # 16 pages: one per bucket
    for _ in range(3):
        hm.update(small_pool.snapshot())
    assert hm.columns().shape == (3, 16)  # history is bounded
    kinds = [bufs[0][4] for _, bufs in outbox.of("heat")]
    assert kinds == [0, 1, 1, 1, 1]  # the first column (a new layout) in full, then one column each
    marks = [bufs[0][16 + 8 * 1] for _, bufs in outbox.of("heat")[1:]]
    manual = (1 + al.pool.COMPACT_REASONS.index("manual")) << MARK_REASON_SHIFT
    assert marks == [MARK_COMPACT | manual, 0, 0, 0]  # the column after compaction: the mark and its trigger


def test_trace_from_pool_events(small_pool: al.PagedPool, outbox: Outbox) -> None:
    from autoglm_lab.widget._trace import EVENT_REASON_SHIFT, window_from_events

    fragmented(small_pool)
    small_pool.compact()
    window = window_from_events(small_pool.snapshot().events)
    assert np.isfinite(window["alloc_s"]).sum() == 10
    assert np.isfinite(window["pause_s"]).sum() == 1
    manual = (1 + al.pool.COMPACT_REASONS.index("manual")) << EVENT_REASON_SHIFT
    assert window["event_kind"].tolist() == [al.pool.EventKind.COMPACT | manual]  # the kind and its trigger
    lt = LatencyTrace()
    lt.send = outbox
    data = lt.update(window)
    lt._on_custom(lt, {"action": "request_full"}, [])
    assert [bufs[0] for _, bufs in outbox.of("trace")] == [data, data]

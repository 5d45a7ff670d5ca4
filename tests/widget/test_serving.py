"""The serving panel: every figure is the simulator's own (`ServingSim.summary`), live and reset."""

from __future__ import annotations

import html
import re

import autoglm_lab as al
from autoglm_lab.pool import format_bytes
from autoglm_lab.widget import Dashboard
from autoglm_lab.widget._serving import serving_rows


def _rows(panel_html: str) -> dict[str, str]:
    pairs = re.findall(r"<td title='([^']*)'>[^<]*</td><td class='v' title='([^']*)'>", panel_html)
    return {html.unescape(k): html.unescape(v) for k, v in pairs}


def _prefix_sim(pool: al.PagedPool) -> al.ServingSim:
    # two sessions sharing a 4-block system prompt: the second request of each hits the cache
    shared = [11, 12, 13, 14]
    reqs = [al.Request(id=i, session_id=i, arrival_s=0.01 * i, prompt_tokens=330, output_tokens=8,
                       block_hashes=(*shared, 100 + i), hash_block_tokens=64)
            for i in range(6)]
    return al.ServingSim(pool, al.ServingConfig(kv_layout="paged", cache_reuse_strategy="lru"), requests=reqs)


def test_the_panel_shows_the_summary_of_the_same_moment_and_starts_again_on_reset() -> None:
    pool = al.PagedPool(al.PoolConfig(page_size="16KiB", memory_pool_initial_size="8MiB", device="cpu"))
    sim = _prefix_sim(pool)
    dash = Dashboard(pool, sim)
    try:
        dash.run(40, frame_every=40)
        s = sim.summary()
        shown = _rows(dash.serving.value)
        assert shown == dict(serving_rows(s))
        assert s["prefix_cache_hits"] > 0 and shown["prefix hits (blocks)"] == (
            f"{s['prefix_cache_hit_rate']:.1%} of {s['prefix_cache_queries']:,}")
        assert shown["running · waiting"] == f"{s['requests_running']:,} · {s['requests_waiting']:,}"
        assert shown["TTFT p50 · p99"] == f"{s['ttft_p50_s'] * 1e3:,.1f} · {s['ttft_p99_s'] * 1e3:,.1f} ms"
        # vLLM's accounting: usage is referenced KV only; cached KV is shown apart
        assert shown["KV usage (referenced)"].startswith(format_bytes(s["used_bytes"]))
        assert shown["cached (evictable)"].startswith(format_bytes(s["cached_bytes"]))
        dash.reset()
        fresh = _rows(dash.serving.value)
        assert fresh["preemptions"] == fresh["evictions"] == "0"
        assert fresh["TTFT p50 · p99"] == fresh["prefix hits (blocks)"] == ""  # nothing measured yet
        assert fresh["sim clock · steps"] == "0.00 s · 0"
    finally:
        dash.close()


def test_a_plain_pool_has_an_empty_serving_panel_that_keeps_its_place(small_pool: al.PagedPool) -> None:
    dash = Dashboard(small_pool)
    try:
        assert _rows(dash.serving.value) == {"simulator": ""}
        side = next(box for row in dash.children for box in getattr(row, "children", ())
                    if dash.stats in getattr(box, "children", ()))
        assert list(side.children) == [dash.stats, dash.serving]  # one column beside the page map
    finally:
        dash.close()


def test_the_panel_keeps_its_figures_when_text_is_refreshed_after_a_live_frame() -> None:
    pool = al.PagedPool(al.PoolConfig(page_size="16KiB", memory_pool_initial_size="8MiB", device="cpu"))
    sim = _prefix_sim(pool)
    dash = Dashboard(pool, sim)
    try:
        sim.run(30, progress=False)
        dash._frame(live=True)  # a live frame between text refreshes: no summary taken
        dash._frame(live=True)
        dash.stop()  # the status and panels refresh from the last frame (what the end of a trace does)
        assert _rows(dash.serving.value) == dict(serving_rows(sim.summary()))
    finally:
        dash.close()


def test_the_simulators_blocks_carry_their_request_and_session_so_tag_colours_tell_them_apart() -> None:
    from autoglm_lab.widget._codec import palette_indices
    from autoglm_lab.widget._palette import TAG_BASE

    pool = al.PagedPool(al.PoolConfig(page_size="16KiB", memory_pool_initial_size="8MiB", device="cpu"))
    sim = _prefix_sim(pool)
    seen: set[str] = set()
    for _ in range(60):  # until two requests hold KV at once
        sim.step()
        snap = pool.snapshot()
        live = {snap.tags[t] for t in snap.block_tag if t >= 0}
        seen |= live
        if len(live) > 1:
            break
    assert len(live) > 1 and all(t.startswith("kv · session ") and " · request " in t for t in seen)
    colours = palette_indices(snap, "tag")
    used = colours[snap.page_block >= 0]
    assert len(set(used.tolist())) > 1 and used.min() >= TAG_BASE  # one colour per request, not one for all

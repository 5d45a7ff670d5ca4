"""Dashboard benchmarks: frame encoding, plotly vs our canvas views, the live loop, browser rendering.

    .venv/bin/python benchmarks/bench_widget.py            # everything (the browser part needs Chromium)
    .venv/bin/python benchmarks/bench_widget.py --no-browser

Figures (see DESIGN.md targets):
  encode     snapshot -> page frame at 1k / 64k / 1M pages: ms per full frame, bytes per page, and a
             delta frame when few pages changed (target at 1M: <= 2 ms, <= 1 byte/page)
  plotly     kernel-side cost of one frame of a plotly FigureWidget heatmap + 3 traces, next to the
             cost of our binary heatmap + trace frames (why those views are canvas anywidgets)
  live       a Dashboard playing at 20 frames/s in a background thread while it drives the simulator:
             achieved frames/s and the simulator's slowdown against the simulator alone
             (targets >= 20 frames/s, <= 10 % slowdown); 5 interleaved pairs, median and IQR
  browser    the page map view rendering 1M-page frames in headless Chromium (target <= 8 ms per
             frame), and Plotly.react of the same heatmap + traces for comparison
  notebook   Dashboard.demo() playing in a real JupyterLab kernel: frames/s the browser drew, and the
             simulator's cost per step live against alone (the same steps from dash.reset(), both on a
             background thread, 30 rounds (9 left the median +-5 % on this machine), each live run
             between two alone runs: the slowdown of each
             round against the mean of its two alone runs, their median and interquartile range, and
             the noise floor: alone against the next alone run), with and without the browser
             attached; the kernel-side cost per
             frame (wall, and the drawing thread's CPU: FrameInfo.frame_cpu_s); per step also
             the stepping thread's CPU, its run-queue wait (other processes on the cores) and GIL/lock
             waits, and the CPU share of the kernel, server and Chromium. torch's OpenMP workers, if
             anything still starts threaded CPU copies, show up as the kernel's "other threads" (they
             spin after each one; the pool's CPU copies now run in the calling thread for that reason)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import machine

import autoglm_lab as al
from autoglm_lab.widget import encode_delta, encode_full, palette_indices
from autoglm_lab.widget._codec import encode_heat, encode_trace
from autoglm_lab.widget._heatmap import bucket_column
from autoglm_lab.widget._palette import PALETTE
from autoglm_lab.widget._trace import window_from_steps

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, n: int) -> tuple[float, object]:
    """Median seconds of ``n`` calls, and the last result."""
    samples, out = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), out


def spread(xs: list[float], fmt: str = "{:+.1%}") -> str:
    """Median, interquartile range and count of ``xs``: one noisy run cannot decide the figure."""
    med = statistics.median(xs)
    if len(xs) < 2:
        return fmt.format(med)
    q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return f"{fmt.format(med)} (IQR {fmt.format(q1)} .. {fmt.format(q3)}, n={len(xs)})"


def fragmented_pool(num_pages: int, seed: int = 0) -> tuple[al.PagedPool, list[al.Block]]:
    """A pool of ``num_pages`` 64-byte pages, about half used by blocks of 1-16 pages, holes between."""
    pool = al.PagedPool(al.PoolConfig(page_size=64, memory_pool_initial_size=64 * num_pages,
                                      max_size=64 * num_pages, device="cpu", fit="first"))
    rng = np.random.default_rng(seed)
    blocks = []
    try:
        while True:
            blocks.append(pool.alloc_bytes(int(rng.integers(1, 17)) * 64 - 8, tag=f"kv/{len(blocks) % 97}"))
    except al.PoolExhausted:
        pass
    keep = []
    for b in blocks:
        if rng.random() < 0.5:
            pool.free(b)
        else:
            keep.append(b)
    return pool, keep


def bench_encode() -> None:
    print("\n== encode: snapshot -> page frame (state colours)")
    print(f"{'pages':>9} {'snapshot ms':>12} {'full ms':>9} {'B/page':>7} {'delta ms':>9} {'delta B':>8} "
          f"{'changed':>8} {'tag ms':>7} {'age ms':>7}")
    for num_pages in (1 << 10, 1 << 16, 1 << 20):
        pool, live = fragmented_pool(num_pages)
        n = 50 if num_pages > 100_000 else 300
        snap_s, snap = timed(pool.snapshot, 10 if num_pages > 100_000 else 50)
        full_s, full = timed(lambda s=snap: encode_full(palette_indices(s, "state").copy(), frame_id=1, seq=s.seq), n)
        prev = palette_indices(snap, "state").copy()
        for b in live[:: max(1, len(live) // 10)][:10]:  # a few blocks freed: a small change
            pool.free(b)
        snap2 = pool.snapshot()
        delta_s, delta = timed(lambda p=prev, s=snap2: encode_delta(p, palette_indices(s, "state"), frame_id=2,
                                                                    base_id=1, seq=s.seq), n)
        tag_s, _ = timed(lambda s=snap: palette_indices(s, "tag"), max(10, n // 5))
        age_s, _ = timed(lambda s=snap: palette_indices(s, "age"), max(10, n // 5))
        print(f"{num_pages:>9,} {snap_s * 1e3:>12.2f} {full_s * 1e3:>9.3f} {full.nbytes / num_pages:>7.3f} "
              f"{delta_s * 1e3:>9.3f} {delta.nbytes:>8,} {delta.pages_changed:>8,} {tag_s * 1e3:>7.2f} "
              f"{age_s * 1e3:>7.2f}")


def bench_plotly() -> None:
    import plotly.graph_objects as go

    print("\n== kernel-side cost of one frame: plotly FigureWidget vs our binary frames")
    buckets, columns, points = 64, 240, 1024
    rng = np.random.default_rng(0)
    z = rng.random((buckets, columns))
    x = np.arange(points, dtype=np.float64)
    fig = go.FigureWidget(data=[go.Heatmap(z=z), go.Scatter(x=x, y=rng.random(points)),
                                go.Scatter(x=x, y=rng.random(points)), go.Scatter(x=x, y=rng.random(points))])

    def plotly_frame() -> None:
        nonlocal z
        z = np.roll(z, -1, axis=1)
        with fig.batch_update():
            fig.data[0].z = z
            for tr in fig.data[1:]:
                tr.y = rng.random(points)
        # what ipywidgets serialises for the front end
        json.dumps(fig.to_plotly_json()["data"], default=lambda a: a.tolist() if hasattr(a, "tolist") else str(a))

    plotly_s, _ = timed(plotly_frame, 30)
    pool, _ = fragmented_pool(1 << 16)
    snap = pool.snapshot()
    steps = {"time_s": x, "step_latency_s": rng.random(points), "alloc_latency_s": rng.random(points),
             "compaction_pause_s": np.zeros(points), "failures": np.zeros(points)}

    def our_frame() -> None:
        col = bucket_column(snap, buckets)
        encode_heat(1, 0, np.array([1.0]), np.zeros(1, np.uint8), col[None, :])
        w = window_from_steps(steps)
        encode_trace(w["time_s"], w["step_s"], w["alloc_s"], w["pause_s"], w["event_time_s"], w["event_kind"])

    ours_s, _ = timed(our_frame, 200)
    print(f"plotly FigureWidget (heatmap {buckets}x{columns} + 3 x {points} points): {plotly_s * 1e3:8.2f} ms/frame"
          f"  -> {plotly_s * 20:.0%} of a core at 20 frames/s")
    print(f"binary heatmap column + trace window (canvas anywidgets):        {ours_s * 1e3:8.3f} ms/frame")


def bench_live(seconds: float = 6.0, rounds: int = 5) -> None:
    from autoglm_lab.widget import Dashboard
    from autoglm_lab.workload import ServingConfig, ServingSim, synthetic_requests

    print("\n== live dashboard at 20 frames/s driving the simulator (headless kernel, compute='none')")

    def make() -> tuple[al.PagedPool, ServingSim]:
        pool = al.PagedPool(al.PoolConfig(page_size="64KiB", memory_pool_initial_size="64MiB", max_size="64MiB",
                                          device="cpu"))
        sim = ServingSim(pool, ServingConfig(kv_layout="contiguous", cache_reuse_strategy="lru"),
                         requests=synthetic_requests(20000, rate_per_s=40.0, seed=0))
        return pool, sim

    # The same N steps both ways (a step's cost depends on how full the simulated server is), and
    # both on a background thread, so thread placement cannot flatter either side (torch's threaded
    # CPU copy_ once ran several times slower on the main thread here).
    # The machine may be shared: besides wall time, count the thread's own CPU time
    # (time.thread_time), which other processes barely disturb.
    def alone_s(n: int, cpu: list[float] | None = None) -> float:
        _, sim = make()
        out: list[float] = []

        def work() -> None:
            t0, c0 = time.perf_counter(), time.thread_time()
            while sim.steps < n and not sim.done:
                sim.step()
            out.append(time.perf_counter() - t0)
            if cpu is not None:
                cpu.append((time.thread_time() - c0) / sim.steps)

        th = threading.Thread(target=work)
        th.start()
        th.join()
        return out[0]

    def live_s(n: int) -> tuple[float, int, int, list[float], int]:
        pool, sim = make()
        dash = Dashboard(pool, sim, fps=20)
        frame_s: list[float] = []
        reached = threading.Event()
        mark: list[tuple[float, int, float]] = []
        cpu0: list[float] = []

        def on_frame(_snap: object, info: object) -> None:
            frame_s.append(info.frame_s)  # type: ignore[attr-defined]
            if not cpu0:  # the first frame of the loop thread (the constructor's ran on this one)
                cpu0.append(time.thread_time() if threading.current_thread() is not main else -1.0)
            if sim.steps >= n and not reached.is_set():
                mark.append((time.perf_counter(), sim.steps, time.thread_time()))
                reached.set()

        main = threading.current_thread()
        dash.on_frame(on_frame)
        cpu0.clear()
        t0 = time.perf_counter()
        dash.play()
        reached.wait(600)  # the main thread blocks without the GIL, like an idle kernel
        frames = dash.loop.frames
        dash.stop()
        dash.close()
        t1, steps, c1 = mark[0]
        cpu_per_step.append((c1 - cpu0[0]) / steps)
        share.append(sum(frame_s) / (t1 - t0))
        return t1 - t0, steps, frames, frame_s, pool.capacity_pages

    cpu_per_step: list[float] = []
    share: list[float] = []
    cpu_alone: list[float] = []
    alone_s(500)  # warm-up
    n = 500
    while alone_s(n) < seconds / 2:
        n *= 2
    alone, live, per_frame, fps, pages = [], [], [], [], 0
    for _ in range(rounds):  # interleaved pairs: the machine is shared, compare each pair
        alone.append(alone_s(n, cpu_alone) / n)
        t, steps, frames, frame_s, pages = live_s(n)
        live.append(t / steps)
        fps.append(frames / t)
        per_frame += frame_s
    a, b = statistics.median(alone), statistics.median(live)
    ratios = [x / y - 1 for x, y in zip(live, alone, strict=True)]
    p95 = sorted(per_frame)[int(0.95 * len(per_frame))]
    print(f"{n:,} simulator steps: alone {a * 1e6:.0f} us/step; with the dashboard playing {b * 1e6:.0f} us/step "
          f"(medians); slowdown per pair {spread(ratios)}; {statistics.median(fps):.1f} frames/s achieved; "
          f"frame cost median {statistics.median(per_frame) * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms ({pages} pages)")
    cpu_ratios = [x / y - 1 for x, y in zip(cpu_per_step, cpu_alone, strict=True)]
    print(f"thread CPU time per simulator step: alone {statistics.median(cpu_alone) * 1e6:.0f} us, in the live "
          f"loop with its frames {statistics.median(cpu_per_step) * 1e6:.0f} us -> slowdown per pair "
          f"{spread(cpu_ratios)}")
    print(f"time the live-loop thread spent drawing frames instead of stepping: "
          f"{', '.join(f'{x:.1%}' for x in share)} of the run (the simulator's direct slowdown)")


def bench_browser() -> None:
    import plotly
    from playwright.sync_api import sync_playwright

    print("\n== browser: headless Chromium (software canvas, --disable-gpu)")
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "bench.js"
        subprocess.run(["npx", "esbuild", "bench/render_bench.js", "--bundle", "--format=iife",
                        f"--outfile={bundle}"], cwd=ROOT / "js", check=True, capture_output=True)
        plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        page_html = Path(tmp) / "bench.html"
        page_html.write_text(f"<!doctype html><html><body><script>{plotly_js.read_text()}</script>"
                             f"<script>{bundle.read_text()}</script></body></html>", encoding="utf-8")
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                str(Path(tmp) / "profile"), executable_path="/usr/bin/chromium", headless=True,
                args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                      "--disable-component-update", "--disable-sync", "--disable-quic"])
            page = browser.new_page()
            page.goto(page_html.as_uri())
            res = page.evaluate("(p) => window.bench.benchPageMap({palette: p})", list(PALETTE))
            print(f"page map, 1,048,576 pages on a {res['canvas'][0]}x{res['canvas'][1]} canvas: "
                  f"full frame {res['full']['median_ms']:.2f} ms (p95 {res['full']['p95_ms']:.2f}); "
                  f"delta (200 runs x 16 pages) {res['delta']['median_ms']:.2f} ms "
                  f"(p95 {res['delta']['p95_ms']:.2f}); last frame on screen: {res['ok']}, cleanup removed the view: "
                  f"{res['cleaned']}")
            res = page.evaluate("() => window.bench.benchPlotly({})")
            print(f"Plotly.react heatmap 64x240 + 3 x 1024-point traces: {res['median_ms']:.1f} ms/frame "
                  f"(p95 {res['p95_ms']:.1f})")
            browser.close()


NOTEBOOK_CELL = """\
from autoglm_lab.widget import Dashboard
dash = Dashboard.demo(fps=20, pace=0)  # as fast as it runs: the benchmark measures the slowdown, not a pace
dash"""

KERNEL_BENCH = """\
import os as _os, threading as _th, time as _t

def _sched(tid):  # (seconds on a CPU, seconds runnable but waiting for one) of one thread
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            a = f.read().split()
        return int(a[0]) / 1e9, int(a[1]) / 1e9
    except OSError:
        return 0.0, 0.0

def _proc_cpu():
    t = _os.times()
    return t.user + t.system

class _Meter:
    # wall, thread CPU, run-queue wait and process CPU of the thread that steps the simulator
    def start(self):
        self.tid = _th.get_native_id()
        self.s0, self.c0, self.p0, self.t0 = _sched(self.tid), _t.thread_time(), _proc_cpu(), _t.perf_counter()
    def stop(self, steps):
        wall, cpu, proc = _t.perf_counter() - self.t0, _t.thread_time() - self.c0, _proc_cpu() - self.p0
        return {"steps": steps, "wall": wall, "cpu": cpu, "wait": _sched(self.tid)[1] - self.s0[1], "proc": proc}

def _alone(n):
    # n simulator steps on a background thread (the live loop's kind), from dash.reset()
    dash.stop(); dash.reset(); sim, m, out = dash.sim, _Meter(), []
    def work():
        m.start()
        while sim.steps < n and not sim.done:
            sim.step()
        out.append(m.stop(sim.steps))
    th = _th.Thread(target=work)
    th.start()
    th.join()
    return out[0]

def _live(n):
    # the same n steps from dash.reset(), driven by the live loop; this (main) thread waits on an
    # Event without the GIL, like an idle kernel: polling with execute requests would cost the loop
    # thread GIL waits that the alone run does not have
    dash.stop(); dash.reset(); sim, m, st, out, done = dash.sim, _Meter(), {}, {}, _th.Event()
    def cb(_snap, info):
        if _th.current_thread() is _th.main_thread() or done.is_set():
            return
        if not st:  # first frame of the loop thread: it has stepped since play(), count from here
            m.start(); st.update(n0=sim.steps, frames=0, frame_s=0.0, frame_cpu=0.0)
            return
        st["frames"] += 1; st["frame_s"] += info.frame_s; st["frame_cpu"] += getattr(info, "frame_cpu_s", 0.0)
        if sim.steps - st["n0"] >= n or sim.done:
            out.update(m.stop(sim.steps - st["n0"]), frames=st["frames"], frame_s=st["frame_s"],
                       frame_cpu=st["frame_cpu"])
            done.set()
    dash.on_frame(cb)
    dash.play()
    done.wait(600)
    dash.stop(); dash._frame_callbacks.remove(cb)
    return out
"""


def _host_cpu(procs: list) -> dict[str, float]:
    """CPU seconds so far of the kernel, the JupyterLab server, Chromium's processes, the rest (playwright) and
    everything outside the benchmark ("outside": the machine's busy time less all of ours)."""
    import psutil

    out = {"kernel": 0.0, "server": 0.0, "chromium renderer": 0.0, "chromium gpu": 0.0, "chromium other": 0.0,
           "other": 0.0}
    for p in procs:
        try:
            t = p.cpu_times()
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        key = ("kernel" if "ipykernel" in cmd else "server" if "jupyter" in cmd and "lab" in cmd
               else "chromium renderer" if "chrom" in cmd and "--type=renderer" in cmd
               else "chromium gpu" if "chrom" in cmd and "--type=gpu-process" in cmd
               else "chromium other" if "chrom" in cmd else "other")
        out[key] += t.user + t.system
    # everything else on the machine (other users' work): all CPUs' busy time minus ours (and this script's)
    total = psutil.cpu_times()
    busy = total.user + total.nice + total.system + getattr(total, "irq", 0.0) + getattr(total, "softirq", 0.0)
    me = psutil.Process().cpu_times()
    out["outside"] = busy - sum(out.values()) - me.user - me.system
    return out


QUIET_CORES = 0.1  # outside load (cores) below which a pair counts as measured on a quiet machine


def bench_notebook(steps: int = 60_000, rounds: int = 30) -> None:
    """The dashboard in JupyterLab (a real kernel, real comms), watched by headless Chromium.

    Like with like: the simulator runs the same ``steps`` steps from ``dash.reset()`` both ways, on a
    background thread both ways (alone: a plain thread; live: the dashboard's loop thread, which also
    draws and sends 20 frames/s), interleaved ``rounds`` times. Besides wall time per step, the
    stepping thread's CPU time per step (what the frames and the kernel's other threads cost it) and
    its run-queue wait (time it was ready but other processes held the cores) come from the kernel's
    /proc, and the CPU share of the kernel, the JupyterLab server and Chromium from psutil."""
    import psutil
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT))
    from tests.ui import test_dashboard_e2e as e2e

    print(f"\n== notebook: Dashboard.demo() playing at 20 frames/s in JupyterLab (kernel, server and headless "
          f"Chromium share this machine; {steps:,} steps from dash.reset(), alone vs live, {rounds} rounds; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')})")
    e2e.SETUP_CELL = NOTEBOOK_CELL
    me = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp, e2e.jupyter_lab(Path(tmp)) as lab, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(Path(tmp) / "profile"), executable_path=e2e.CHROMIUM, headless=True, args=e2e.CHROMIUM_ARGS,
            viewport={"width": 1500, "height": 1250})
        page = browser.pages[0]
        page.goto(f"{lab.url}/lab/tree/dashboard.ipynb?token={lab.token}&reset")
        page.wait_for_function(e2e.KERNEL_READY, timeout=90_000)
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        page.wait_for_function("() => { const c = document.querySelector('canvas.agl-canvas');"
                               " return c && +c.dataset.numPages > 0; }", timeout=120_000)
        kernel = e2e.Kernel(lab)

        def host() -> tuple[float, dict[str, float]]:
            return time.perf_counter(), _host_cpu(me.children(recursive=True))

        def live() -> tuple[dict, dict[str, float]]:
            h0 = host()
            out = kernel.eval(f"_live({steps})")
            h1 = host()
            return out, {k: (h1[1][k] - h0[1][k]) / (h1[0] - h0[0]) for k in h1[1]}

        def alone() -> tuple[dict, dict[str, float]]:
            h0 = host()
            out = kernel.eval(f"_alone({steps})")
            h1 = host()
            return out, {k: (h1[1][k] - h0[1][k]) / (h1[0] - h0[0]) for k in h1[1]}

        def us(run: dict, key: str) -> float:
            return run[key] / run["steps"] * 1e6

        def blocked(run: dict) -> float:  # off a CPU and not waiting for one: the GIL, a lock, a sleep
            return (run["wall"] - run["cpu"] - run["wait"]) / run["steps"] * 1e6

        Run = tuple[dict, dict[str, float]]  # the kernel's figures, the cores busy meanwhile

        def report(label: str, rounds_: list[tuple[Run, Run, Run]], drawn: float | None) -> None:
            # each live run between two alone runs (A L A L A ...): drift of the machine over a round
            # cancels, and alone against the next alone (no dashboard either side) measures the noise
            def bracket(key: str, a0: dict, lv: dict, a1: dict) -> float:
                return us(lv, key) / ((us(a0, key) + us(a1, key)) / 2) - 1
            walls = [bracket("wall", a0, lv, a1) for (a0, _), (lv, _), (a1, _) in rounds_]
            cpus = [bracket("cpu", a0, lv, a1) for (a0, _), (lv, _), (a1, _) in rounds_]
            noise = [us(a1, "wall") / us(a0, "wall") - 1 for (a0, _), _, (a1, _) in rounds_]
            frame_ms = [lv["frame_s"] / max(1, lv["frames"]) * 1e3 for _, (lv, _), _ in rounds_]
            frame_cpu_ms = [lv.get("frame_cpu", 0.0) / max(1, lv["frames"]) * 1e3 for _, (lv, _), _ in rounds_]
            (a, ah), (lv, lh), _ = rounds_[sorted(range(len(rounds_)), key=lambda i: walls[i])[len(rounds_) // 2]]
            fps = lv["frames"] / lv["wall"]
            print(f"{label}: slowdown per step, wall {spread(walls)} (rounds {', '.join(f'{x:+.0%}' for x in walls)}); "
                  f"thread CPU {spread(cpus)}")
            print(f"  noise floor, alone vs the next alone run (no dashboard either side): {spread(noise)}")
            print(f"  kernel-side cost per frame (ms, per live run): wall {spread(frame_ms, '{:.2f}')}, "
                  f"drawing thread's CPU {spread(frame_cpu_ms, '{:.2f}')}")
            print(f"  median round, us/step alone -> live: wall {us(a, 'wall'):.1f} -> {us(lv, 'wall'):.1f}, "
                  f"thread CPU {us(a, 'cpu'):.1f} -> {us(lv, 'cpu'):.1f}, run-queue wait {us(a, 'wait'):.1f} -> "
                  f"{us(lv, 'wait'):.1f}, neither (GIL, locks) {blocked(a):.1f} -> {blocked(lv):.1f}, "
                  f"the kernel's other threads' CPU (torch/OpenMP workers, IOPub) "
                  f"{us(a, 'proc') - us(a, 'cpu'):.1f} -> {us(lv, 'proc') - us(lv, 'cpu'):.1f}; "
                  f"{a['steps'] / a['wall']:,.0f} -> {lv['steps'] / lv['wall']:,.0f} steps/s")
            print(f"  live loop {fps:.1f} frames/s, {lv['frame_s'] / max(1, lv['frames']) * 1e3:.2f} ms per frame "
                  f"({lv['frame_s'] / lv['wall']:.1%} of the loop thread)"
                  + (f"; browser drew {drawn:.1f} page-map frames/s" if drawn is not None else ""))
            print("  cores busy (CPU s per s) alone -> live: "
                  + ", ".join(f"{k} {ah[k]:.2f} -> {lh[k]:.2f}" for k in ah))
            # other users' processes compete for the same 2 cores: the rounds measured while the rest of
            # the machine was quiet say what the dashboard itself costs
            busiest = [max(h["outside"] for _, h in r) for r in rounds_]
            quiet = [w for w, b in zip(walls, busiest, strict=True) if b < QUIET_CORES]
            print(f"  load outside the benchmark per round (cores, busiest of its 3 runs): "
                  f"{', '.join(f'{b:.2f}' for b in busiest)}; slowdown over the {len(quiet)} rounds with "
                  f"< {QUIET_CORES} core outside: " + (spread(quiet) if quiet else "none"))

        try:
            kernel.eval("exec(" + repr(KERNEL_BENCH) + ") or None")
            kernel.eval(f"_alone({steps // 4}) and None")  # warm-up
            # count the page-map frames the browser applies (each bumps data-frame-id)
            page.evaluate("""() => { const c = document.querySelector('canvas.agl-canvas'); window.__frames = 0;
                new MutationObserver(() => window.__frames++).observe(c, {attributeFilter: ['data-frame-id']}); }""")
            watched, drawn_fps = [], []
            before = alone()
            for _ in range(rounds):
                f0, t0 = page.evaluate("() => window.__frames"), time.perf_counter()
                lv = live()
                drawn_fps.append((page.evaluate("() => window.__frames") - f0) / (time.perf_counter() - t0))
                after = alone()
                watched.append((before, lv, after))
                before = after
            page.goto("about:blank")  # no front end: the kernel still encodes and sends every frame
            time.sleep(1.0)
            unwatched = []
            before = alone()
            for _ in range(rounds):
                lv = live()
                after = alone()
                unwatched.append((before, lv, after))
                before = after
            report("with the browser drawing", watched, statistics.median(drawn_fps))
            report("no browser attached (real comms)", unwatched, None)
        finally:
            kernel.close()
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-browser", action="store_true", help="skip the headless Chromium part")
    parser.add_argument("--only", choices=("encode", "plotly", "live", "browser", "notebook"), help="run one part")
    args = parser.parse_args()
    print(f"bench_widget on {machine()}")
    parts = {"encode": bench_encode, "plotly": bench_plotly, "live": bench_live, "browser": bench_browser,
             "notebook": bench_notebook}
    for name, fn in parts.items():
        if args.only and name != args.only:
            continue
        if name in ("browser", "notebook") and args.no_browser:
            continue
        fn()


if __name__ == "__main__":
    main()

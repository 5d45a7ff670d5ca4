"""``autoglm-lab``: the lab without a notebook.

```
autoglm-lab demo   [--limit N] [--steps N] [--out F.html]   headless default demo -> HTML report
autoglm-lab replay TRACE.csv [--limit N] [options]          serve a trace, report + optional CSV
autoglm-lab tune   [--param NAME=V1,V2 ...] [options]       sweep pool/serving parameters
autoglm-lab bench  [--quick | --only NAME]                  benchmark scripts or a light built-in run
autoglm-lab history RUN.npz [--out F.html] [--max-frames N] replay a recorded run (dash.save) offline
```

Errors (bad arguments, missing or malformed files, invalid settings) print one line on stderr and
exit non-zero: 2 for usage errors (argparse), 1 for the library's typed errors (ValueError,
TypeError, OSError, the pool's errors); ``--debug`` shows their traceback instead. Any other
exception is a bug and keeps its traceback. plotly and the simulator are imported by the commands
that need them.
"""

from __future__ import annotations

import argparse
import logging
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .pool import COMPACTION_MODES, COMPACTION_STRATEGIES, group_stats
from .workload import DEMO_LIMIT, DEMO_TIME_SCALE, LAYOUTS, REUSE_STRATEGIES, SUMMARY_LABELS

if TYPE_CHECKING:
    from .pool import PagedPool, PoolSnapshot
    from .workload import ServingSim

PROG = "autoglm-lab"
_DEVICE_HELP = "auto (CUDA when torch sees a GPU, else the CPU), cpu, cuda or cuda:N (default auto)"
_STEPS_HELP = "stop after this many simulator steps even if requests remain (default: none, serve every request)"
# the summary keys printed after a run (labelled by SUMMARY_LABELS); the report has them all
_PRINTED = ("steps", "sim_time_s", "requests_done", "requests_rejected", "preemptions", "ttft_p50_s", "ttft_p99_s",
            "per_token_latency_p99_s", "peak_utilisation", "failures", "evictions", "compactions")
_SLOWDOWN_BINS = 10  # over_time slices: the slowdown compares the last tenth of the run with the first
log = logging.getLogger(__name__)
_REPO = Path(__file__).resolve().parents[1]  # a source checkout: `bench` runs its benchmarks/ scripts
DEFAULT_SPACE = {
    "memory_pool_initial_size": ["2MiB", "4MiB"],
    "page_size": ["16KiB", "64KiB"],
    "compaction": ["off", "eager"],
    "cache_reuse_strategy": ["none", "lru"],
}


class CliError(Exception):
    """A problem to report in one line (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, not the usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        ns, extra = super().parse_known_args(args, namespace)
        # COMMAND is checked here, not by argparse: its "required: COMMAND" would hide a misspelt option
        if not extra and getattr(ns, "command", "") is None:
            self.error("the following arguments are required: COMMAND")
        return ns, extra


# ---------------------------------------------------------------------- arguments
def _int_at_least(least: int, why: str = "") -> Callable[[str], int]:
    """An argparse type: an integer >= ``least`` (``why``: said when it is smaller)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {least}{why}")
        return value
    return parse


_positive_int = _int_at_least(1)
_frame_count = _int_at_least(2, " (the first and the last frame)")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
    return value


def _scalar(text: str) -> Any:
    """A --param value: int, float, true/false, none, or the text itself (sizes such as 64KiB)."""
    low = text.strip().lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def _param(text: str) -> tuple[str, list[Any]]:
    name, sep, values = text.partition("=")
    if not sep or not name.strip() or not values.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE[,VALUE...], e.g. page_size=16KiB,64KiB")
    return name.strip(), [_scalar(v) for v in values.split(",") if v.strip()]


def _pool_options(p: argparse.ArgumentParser, *, page: str, size: str) -> None:
    g = p.add_argument_group("pool")
    g.add_argument("--page-size", default=page, help=f"bytes per page, e.g. 64KiB (default {page})")
    g.add_argument("--pool-size", default=size, help=f"memory_pool_initial_size (default {size})")
    g.add_argument("--max-size", default=None, help="largest size the pool may grow to (default: the pool size)")
    g.add_argument("--compaction", choices=COMPACTION_MODES, default="lazy")
    g.add_argument("--strategy", choices=COMPACTION_STRATEGIES, default="two_finger",
                   help="compaction strategy (default two_finger)")
    g.add_argument("--threshold", type=float, default=0.3, help="fragmentation_threshold_factor (default 0.3)")
    g.add_argument("--device", default="auto", help=_DEVICE_HELP)
    g = p.add_argument_group("serving")
    g.add_argument("--kv-layout", choices=LAYOUTS, default="contiguous")
    g.add_argument("--cache-reuse", choices=REUSE_STRATEGIES, default="lru",
                   help="cache_reuse_strategy (default lru)")
    g.add_argument("--seed", type=int, default=0, help="simulator seed (default 0)")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog=PROG, description="A lab for GPU memory fragmentation: paged pool, compactor, serving "
                                        "simulator, tuning and reports.")
    from . import __version__

    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    ap.add_argument("--debug", action="store_true", help="on an error, show the Python traceback")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")  # required: see _Parser.parse_known_args

    p = sub.add_parser("demo", help="run the default demo headless and write an HTML report",
                       description="Run the default demo (64 MiB pool of 64 KiB pages, on the GPU when there is "
                                   "one, contiguous KV, LRU reuse, the shipped Mooncake trace 8x faster with "
                                   "prompts at 1/8) without a notebook and write a standalone HTML report. The "
                                   f"defaults serve the first {DEMO_LIMIT:,} requests to the end: enough to fill the "
                                   "pool several times, so the report shows failed allocations, preemptions, "
                                   "compactions, evictions and the slowdown over time.")
    p.add_argument("--limit", type=_positive_int, default=DEMO_LIMIT,
                   help=f"requests of the trace to serve, to completion (default {DEMO_LIMIT})")
    p.add_argument("--steps", type=_positive_int, default=None, help=_STEPS_HELP)
    p.add_argument("--snapshots", type=_positive_int, default=60,
                   help="snapshots for the heatmap (default 60; a run without --steps keeps up to twice as many)")
    p.add_argument("--kv-layout", choices=LAYOUTS, default="contiguous")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help=_DEVICE_HELP)
    p.add_argument("--out", type=Path, default=Path("autoglm_lab_demo.html"), help="report path")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("replay", help="serve a trace CSV and report",
                       description="Serve the requests of a trace CSV (TIMESTAMP,ContextTokens,GeneratedTokens) "
                                   "and write an HTML report (and optionally the per-step table as CSV).")
    p.add_argument("trace", type=Path, metavar="TRACE.csv")
    p.add_argument("--limit", type=_positive_int, default=None,
                   help="serve the first N requests of the trace, to completion (default: all of them)")
    p.add_argument("--steps", type=_positive_int, default=None, help=_STEPS_HELP)
    p.add_argument("--time-scale", type=_positive_float, default=DEMO_TIME_SCALE,
                   help=f"arrivals this many times faster (default {DEMO_TIME_SCALE:g}, as the demo: at the recorded "
                        "rate the shipped traces leave a 64 MiB pool mostly idle, with no fragmentation to see; "
                        "1 replays the arrivals as recorded)")
    p.add_argument("--token-scale", type=_positive_float, default=1.0, help="multiply token counts")
    p.add_argument("--snapshots", type=_positive_int, default=60)
    p.add_argument("--out", type=Path, default=Path("autoglm_lab_replay.html"), help="report path")
    p.add_argument("--csv", type=Path, default=None, help="also write the per-step results here")
    p.add_argument("--quiet", action="store_true")
    _pool_options(p, page="64KiB", size="64MiB")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("tune", help="sweep pool and serving parameters",
                       description="Run one simulation per parameter combination and report the trade-off between "
                                   "memory utilisation and p99 time to first token.")
    p.add_argument("--param", type=_param, action="append", default=None, metavar="NAME=V1,V2",
                   help="a PoolConfig/ServingConfig field and its values (repeatable); default: a 16-point space "
                        "over pool size, page size, compaction and cache reuse")
    p.add_argument("--method", choices=("grid", "random"), default="grid")
    p.add_argument("--n-trials", type=_positive_int, default=None, help="random: trials to draw (default 20)")
    p.add_argument("--seed", type=int, default=0, help="random search seed and workload seed")
    p.add_argument("--objective", default="ttft_p99_s", help="metric to optimise, or min:COL / max:COL")
    p.add_argument("--trace", type=Path, default=None, help="a trace CSV instead of synthetic requests")
    p.add_argument("--sessions", type=_positive_int, default=60, help="synthetic sessions (default 60)")
    p.add_argument("--rate", type=_positive_float, default=400.0, help="synthetic arrivals per second")
    p.add_argument("--steps", type=_positive_int, default=5000, help="at most this many steps per trial")
    p.add_argument("--workers", type=_positive_int, default=None, help="processes (default 2)")
    p.add_argument("--serial", action="store_true", help="run the trials in this process")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="a Dask scheduler to run the trials on")
    p.add_argument("--out", type=Path, default=None, help="write the results table (CSV)")
    p.add_argument("--html", type=Path, default=None, help="write the trade-off figure (standalone HTML)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("bench", help="run the benchmark scripts, or a light built-in benchmark",
                       description="Run the scripts in benchmarks/ (a source checkout), or with --quick (or "
                                   "without a checkout) a light built-in benchmark of the pool and simulator.")
    p.add_argument("--quick", action="store_true", help="the light built-in benchmark only")
    p.add_argument("--only", action="append", default=None, metavar="NAME",
                   help="run only benchmarks/bench_NAME.py (repeatable)")
    p.add_argument("--list", action="store_true", help="list the benchmark scripts and exit")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("history", help="replay a recorded run (dash.save) as an offline HTML report",
                       description="Write a standalone HTML page that replays a run recorded by the dashboard "
                                   "(dash.save('run.npz'), a SnapshotHistory file): a time slider with play and "
                                   "step buttons over the frames, the page map, pool stats and run summary of "
                                   "the frame under it, the fragmentation heatmap and the latency trace. It "
                                   "works offline.")
    p.add_argument("history", type=Path, metavar="FILE.npz")
    p.add_argument("--out", type=Path, default=None,
                   help="report path (default: FILE.html beside the history file)")
    p.add_argument("--max-frames", type=_frame_count, default=300,
                   help="frames on the slider, thinned evenly, first and last kept (default 300, at least 2)")
    p.set_defaults(func=cmd_history)
    from .torchsnap import cli as torchsnap_cli

    torchsnap_cli.add_parser(sub)  # `torch-snapshot FILE.pickle`: verdicts per OOM, offline HTML report
    return ap


# ---------------------------------------------------------------------- runs with reports
def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def _run_with_snapshots(sim: ServingSim, steps: int | None, snapshots: int, quiet: bool
                        ) -> tuple[list[PoolSnapshot], list[float]]:
    """Run ``steps`` steps, or with None until every request is done, taking ``snapshots`` to twice
    that many evenly spaced snapshots (and one at the end)."""
    from tqdm.auto import tqdm

    # the length of an open-ended run is unknown: snapshot often, and halve the list when it is full
    every = max(1, steps // snapshots) if steps is not None else 16
    snaps, times, at = [sim.pool.snapshot()], [sim.clock], [sim.steps]
    start = sim.steps
    total, unit = (steps, "step") if steps is not None else (len(sim.requests), "request")

    def progress() -> int:
        return sim.steps - start if steps is not None else int(sim.totals["finished"] + sim.totals["rejected"])

    with tqdm(total=total, disable=quiet, unit=unit, desc="serving", file=sys.stderr) as bar:
        while (steps is None or sim.steps - start < steps) and not sim.done:
            before = progress()
            sim.run(every if steps is None else min(every, steps - (sim.steps - start)), progress=False)
            bar.update(progress() - before)
            snaps.append(sim.pool.snapshot())
            times.append(sim.clock)
            at.append(sim.steps)
            if len(snaps) > 2 * snapshots:
                snaps, times, at = snaps[::2], times[::2], at[::2]
                every *= 2
    if at[-1] != sim.steps:  # the halving dropped the end
        snaps.append(sim.pool.snapshot())
        times.append(sim.clock)
    return snaps, times


def _report(path: Path, title: str, pool: PagedPool, sim: ServingSim, snaps: list[PoolSnapshot],
            times: list[float], extra: dict[str, Any]) -> Path:
    from .report import write_report

    config = {"pool": pool.config.to_dict(), "serving": sim.config.to_dict(), "run": extra}
    return write_report(path, snaps, steps=sim.results(), summary=sim.summary(), config=config, times=times,
                        title=title, over_time=sim.over_time(_SLOWDOWN_BINS))


def _print_summary(sim: ServingSim, steps: int | None) -> None:
    """A few figures of the run, grouped and labelled as in the report; says when --steps cut it short."""
    from .workload import slowdown_ratio

    summary = sim.summary()
    groups = group_stats({k: summary[k] for k in _PRINTED}, SUMMARY_LABELS)
    width = max(len(g) for g, _ in groups)
    for group, rows in groups:
        _say(f"{group:<{width}}  " + " · ".join(f"{label}: {text}" for _, label, text in rows))
    ratio = slowdown_ratio(sim.over_time(_SLOWDOWN_BINS))
    _say(f"{'Slowdown':<{width}}  median TTFT of the last tenth of the run: "
         + (f"{ratio:.2f} times the first tenth's" if math.isfinite(ratio) else
            "not comparable (no first token in the first or the last tenth)"))
    if steps is not None and not sim.done:
        left = summary["requests_total"] - summary["requests_done"] - summary["requests_rejected"]
        _say(f"Cut short by --steps {steps}: {left:,} of {summary['requests_total']:,} requests not finished "
             f"({summary['requests_running']:,} running, {summary['requests_waiting']:,} waiting, the rest not "
             "yet arrived); run without --steps to serve them all")


def _run_extra(args: argparse.Namespace, sim: ServingSim) -> dict[str, Any]:
    return {"requests": len(sim.requests), "steps_run": sim.steps,
            "step_cap": args.steps if args.steps is not None else "none (every request served)"}


def _check_outputs(args: argparse.Namespace, *options: str) -> None:
    """Refuse an output path that cannot be a file before a long run, not after it."""
    for option in options:
        path = getattr(args, option)
        if path is not None and path.is_dir():
            raise CliError(f"--{option} {str(path)!r} is a directory: give a file path")
        # a parent that is a file: mkdir would fail only after the run
        parent = next((p for p in (path.parents if path is not None else ()) if p.exists()), None)
        if parent is not None and not parent.is_dir():
            raise CliError(f"--{option} {str(path)!r} is not allowed: {str(parent)!r} is a file, not a folder")


def _check_trace(path: Path) -> None:
    if path.is_dir():
        raise CliError(f"trace file {str(path)!r} is a folder: give the path of a trace CSV file")
    if not path.is_file():
        raise CliError(f"trace file {str(path)!r} does not exist")


def _check_history(path: Path) -> None:
    if path.is_dir():
        raise CliError(f"history file {str(path)!r} is a folder: give the .npz that dash.save wrote")
    if not path.is_file():
        raise CliError(f"history file {str(path)!r} does not exist")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":  # numpy would take other bytes for a pickle, and say so
        raise CliError(f"history file {str(path)!r} is not an .npz archive: give the file that dash.save wrote")


def cmd_demo(args: argparse.Namespace) -> int:
    from .workload import demo_setup, demo_trace_path

    _check_outputs(args, "out")

    pool, sim = demo_setup(kv_layout=args.kv_layout, seed=args.seed, device=args.device, limit=args.limit)
    snaps, times = _run_with_snapshots(sim, args.steps, args.snapshots, args.quiet)
    out = _report(args.out, "autoglm_lab demo", pool, sim, snaps, times,
                  {"trace": demo_trace_path().name, **_run_extra(args, sim)})
    _print_summary(sim, args.steps)
    _say(f"report written to {out.resolve()}")
    return 0


def _pool_config(args: argparse.Namespace) -> Any:
    from .pool import PoolConfig

    return PoolConfig(page_size=args.page_size, memory_pool_initial_size=args.pool_size, max_size=args.max_size,
                      device=args.device, compaction=args.compaction, compaction_strategy=args.strategy,
                      fragmentation_threshold_factor=args.threshold)


def cmd_replay(args: argparse.Namespace) -> int:
    from .pool import PagedPool
    from .workload import ServingConfig, ServingSim, load_trace

    _check_trace(args.trace)
    _check_outputs(args, "out", "csv")
    cfg = _pool_config(args)
    serving = ServingConfig(kv_layout=args.kv_layout, cache_reuse_strategy=args.cache_reuse, seed=args.seed)
    requests = load_trace(args.trace, limit=args.limit, time_scale=args.time_scale, token_scale=args.token_scale)
    if not requests:
        raise CliError(f"trace file {str(args.trace)!r} has no requests")
    pool = PagedPool(cfg)
    sim = ServingSim(pool, serving, requests=requests)
    snaps, times = _run_with_snapshots(sim, args.steps, args.snapshots, args.quiet)
    out = _report(args.out, f"autoglm_lab replay of {args.trace.name}", pool, sim, snaps, times,
                  {"trace": str(args.trace), "time_scale": args.time_scale, "token_scale": args.token_scale,
                   **_run_extra(args, sim)})
    _print_summary(sim, args.steps)
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        sim.results().to_csv(args.csv, index=False)
        _say(f"per-step results written to {args.csv.resolve()}")
    _say(f"report written to {out.resolve()}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from .tuning import Workload, tune

    names = [name for name, _ in args.param or ()]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CliError(f"--param {', '.join(twice)} given more than once: list all values in one --param NAME=V1,V2")
    space = dict(args.param) if args.param else DEFAULT_SPACE
    if args.trace is not None:
        _check_trace(args.trace)
    _check_outputs(args, "out", "html")
    workload = Workload(trace=None if args.trace is None else str(args.trace), steps=args.steps,
                        num_sessions=args.sessions, rate_per_s=args.rate, seed=args.seed)
    client = None
    executor: Any = "serial" if args.serial else None
    if args.scheduler is not None:
        try:
            from distributed import Client
        except ImportError:
            raise CliError("--scheduler needs dask[distributed]: pip install 'dask[distributed]'") from None
        client = Client(args.scheduler, timeout="10s")
        executor = client.get_executor()
    t0 = time.perf_counter()
    try:
        res = tune(space, workload, objective=args.objective, n_trials=args.n_trials, method=args.method,
                   seed=args.seed, executor=executor, progress=not args.quiet, max_workers=args.workers)
    finally:
        if client is not None:
            client.close()
    elapsed = time.perf_counter() - t0
    df = res.results
    _say(f"{len(df)} trials in {elapsed:.1f} s ({len(df) / elapsed:.2f} trials/s)")
    cols = ["trial", *res.params, "mean_utilisation", "ttft_p99_s", "failures", "preemptions"]
    _say("Pareto front (memory utilisation vs p99 time to first token):")
    _say(res.pareto()[cols].to_string(index=False))
    best = res.best()
    _say(f"best for {args.objective}: trial {int(best['trial'])}: "
         + ", ".join(f"{p}={best[p]}" for p in res.params))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out, index=False)
        _say(f"results written to {args.out.resolve()}")
    if args.html is not None:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        res.figure().write_html(args.html, include_plotlyjs=True)
        _say(f"trade-off figure written to {args.html.resolve()}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from .history import SnapshotHistory
    from .report import thin_indices, write_history_report

    _check_history(args.history)
    if args.out is None:
        args.out = args.history.with_suffix(".html")
    _check_outputs(args, "out")
    if args.out.resolve() == args.history.resolve():
        raise CliError(f"--out {str(args.out)!r} is the history file itself: give another path")
    hist = SnapshotHistory.load(args.history)  # a malformed file: ValueError, one line
    if not len(hist):
        raise CliError(f"history file {str(args.history)!r} has no frames: nothing to replay")
    out = write_history_report(args.out, hist, max_frames=args.max_frames,
                               title=f"autoglm_lab replay of {args.history.name}")
    shown = len(thin_indices(len(hist), args.max_frames))
    _say(f"{len(hist) + hist.dropped:,} frames recorded, {hist.dropped:,} dropped by the history's bound, "
         f"{shown:,} on the slider ({hist.times[0]:,.3f}–{hist.times[-1]:,.3f} s)")
    _say(f"report written to {out.resolve()}")
    return 0


# ---------------------------------------------------------------------- bench
def _scripts() -> dict[str, Path]:
    folder = _REPO / "benchmarks"
    return {p.stem.removeprefix("bench_"): p for p in sorted(folder.glob("bench_*.py"))} if folder.is_dir() else {}


def cmd_bench(args: argparse.Namespace) -> int:
    scripts = _scripts()
    if args.list:
        _say("\n".join(f"{name}: {path}" for name, path in scripts.items()) or "no benchmark scripts (not a checkout)")
        return 0
    if args.quick or not scripts:
        if args.only:
            raise CliError("--only needs the benchmark scripts of a source checkout; use --quick alone")
        return _quick_bench()
    names = args.only or list(scripts)
    unknown = [n for n in names if n not in scripts]
    if unknown:
        raise CliError(f"no benchmark named {', '.join(unknown)}; available: {', '.join(scripts)}")
    status = 0
    for name in names:
        _say(f"== {scripts[name].name}")
        sys.stdout.flush()
        status = max(status, subprocess.call([sys.executable, str(scripts[name])], cwd=_REPO))
    return status


def _quick_bench() -> int:
    import statistics

    import torch

    from .pool import PagedPool, PoolConfig
    from .workload import ServingConfig, ServingSim, synthetic_requests

    pool = PagedPool(PoolConfig(page_size="4KiB", memory_pool_initial_size="16MiB", max_size=None, device="auto"))
    _say(f"device: {pool.device}")
    samples = []
    for _ in range(20):
        t0 = time.perf_counter_ns()
        for _ in range(500):
            pool.free(pool.alloc_bytes(12_000))
        samples.append((time.perf_counter_ns() - t0) / 500)
    _say(f"alloc+free on a {pool.capacity_pages}-page pool: median {statistics.median(samples) / 1e3:.2f} us per pair")
    blocks = [pool.alloc((1024,), torch.float32) for _ in range(1000)]
    for b in blocks[::2]:
        pool.free(b)
    rep = pool.compact()
    rate = rep.bytes_moved / rep.pause_s / 1e9 if rep.pause_s else float("nan")
    _say(f"full compaction: {rep.pages_moved} pages, {rep.bytes_moved / 2**20:.1f} MiB moved in "
         f"{rep.pause_s * 1e3:.2f} ms ({rate:.2f} GB/s)")
    sim_pool = PagedPool(PoolConfig(page_size="16KiB", memory_pool_initial_size="8MiB", max_size=None, device="auto"))
    sim = ServingSim(sim_pool, ServingConfig(compute="none"), requests=synthetic_requests(100, rate_per_s=200.0))
    t0 = time.perf_counter()
    s = sim.run(2000, progress=False)
    wall = time.perf_counter() - t0
    _say(f"simulator, compute='none': {s['tokens']} tokens in {wall:.2f} s ({s['tokens'] / wall:,.0f} tokens/s, "
         f"target >= 50k on one core)")
    return 0


# ---------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (errors: one line on stderr)."""
    from .pool import PoolError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    # the typed errors of bad input; other exception types are bugs and keep their traceback
    except (CliError, PoolError, ValueError, TypeError, OSError, MemoryError, RuntimeError) as err:
        if args.debug:
            raise
        log.debug("%s %s failed", PROG, args.command, exc_info=True)
        text = str(err).strip()
        message = text.splitlines()[0] if text else type(err).__name__
        sys.stderr.write(f"{PROG} {args.command}: error: {message}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())

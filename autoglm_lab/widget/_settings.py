"""The dashboard's controls as one table: a row per control says what it shows, where, and what a new
value reaches.

```
target    a new value goes to                                    initial value
pool      pool.configure(name=value)   (PoolConfig validation)   pool.config.<name>
sim       sim.configure(name=value)    (ServingConfig)           sim.config.<name> (disabled without a sim)
rebuild   nothing until "Apply (rebuild pool)"                   row.value(dash)
view      row.act(dash, value)         (the dashboard itself)    row.value(dash)
action    row.act(dash, value)         (buttons: value None)     -
```

Adding a control is one row; `Dashboard.set(name, value)` accepts every row that is not an action.
Every row has a tooltip (``help``: what it does, when it has no effect); a row greys out while
``idle(dash)`` gives a reason (or it needs a simulator the dashboard lacks), the tooltip saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import ipywidgets as w

from ..compactor import STRATEGIES
from ..pool import COALESCE_MODES, COMPACTION_MODES, FITS, format_size, parse_size
from ._controls import (
    GuardedButton,
    GuardedDropdown,
    GuardedFloatLogSlider,
    GuardedFloatSlider,
    GuardedIntSlider,
    GuardedToggleButton,
    GuardedToggleButtons,
)
from ._heatmap import METRICS
from ._palette import COLOR_MODES

if TYPE_CHECKING:
    from ._dashboard import Dashboard

__all__ = ["Control", "CONTROLS", "PANELS", "PACES", "AT_END", "Target", "make_control", "options_of", "value_of",
           "fields", "idle_reason", "show_idle"]

Target = Literal["pool", "sim", "rebuild", "view", "action"]
# (label, value, options) -> the control
Factory = Callable[[str, Any, Sequence[Any] | None], w.DOMWidget]
Options = Sequence[Any] | Callable[["Dashboard"], Sequence[Any]]

_FIELD_STYLE = {"description_width": "118px"}


@dataclass(frozen=True)
class Control:
    name: str                      # Dashboard.set() key; the config field for pool / sim targets
    label: str
    target: Target
    factory: Factory
    panel: str                     # "bar" (beside the title) or a panel's heading
    help: str = ""                 # the tooltip: what it does (and when it has no effect)
    options: Options | None = None  # a sequence, or a function of the dashboard (recomputed on rebuild)
    value: Callable[[Dashboard], Any] | None = None  # initial value, when not the target's field
    act: Callable[[Dashboard, Any], Any] | None = None  # view / action targets: what a value does
    to_config: Callable[[Any], Any] | None = None  # pool / sim: the control's value -> the field's
    default: Any = None            # sim targets: the value shown without a simulator
    needs_sim: bool = False        # disabled without a simulator (sim targets always are)
    idle: Callable[[Dashboard], str | None] | None = None  # why it has no effect now (greyed out), or None


# ------------------------------------------------------------------ widget factories
def slider(low: float, high: float, step: float) -> Factory:
    def make(label: str, value: Any, _options: Sequence[Any] | None) -> w.DOMWidget:
        return GuardedFloatSlider(value=value, min=low, max=high, step=step, description=label,
                                  style=_FIELD_STYLE, layout=_field_layout())
    return make


def log_slider(low_exp: float, high_exp: float, step: float) -> Factory:
    def make(label: str, value: Any, _options: Sequence[Any] | None) -> w.DOMWidget:
        return GuardedFloatLogSlider(value=value, base=10, min=low_exp, max=high_exp, step=step, description=label,
                                     style=_FIELD_STYLE, layout=_field_layout())
    return make


def int_slider(low: int, high: int) -> Factory:
    def make(label: str, value: Any, _options: Sequence[Any] | None) -> w.DOMWidget:
        return GuardedIntSlider(value=value, min=low, max=high, description=label, style=_FIELD_STYLE,
                                layout=_field_layout())
    return make


def dropdown() -> Factory:
    def make(label: str, value: Any, options: Sequence[Any] | None) -> w.DOMWidget:
        return GuardedDropdown(options=list(options or ()), value=value, description=label, style=_FIELD_STYLE,
                               layout=_field_layout())
    return make


def toggles(button_width: str = "62px") -> Factory:
    def make(label: str, value: Any, options: Sequence[Any] | None) -> w.DOMWidget:
        return GuardedToggleButtons(options=list(options or ()), value=value, description=label,
                                    style={**_FIELD_STYLE, "button_width": button_width}, layout=_field_layout())
    return make


def button(icon: str, width: str, button_style: str = "") -> Factory:
    def make(label: str, _value: Any, _options: Sequence[Any] | None) -> w.DOMWidget:
        return GuardedButton(description=label, icon=icon, button_style=button_style, layout=w.Layout(width=width))
    return make


def toggle(icon: str, width: str, button_style: str = "") -> Factory:
    def make(label: str, _value: Any, _options: Sequence[Any] | None) -> w.DOMWidget:
        return GuardedToggleButton(value=False, description=label, icon=icon, button_style=button_style,
                                   layout=w.Layout(width=width))
    return make


def _field_layout() -> w.Layout:
    # fills its panel's column (never wider: a fixed width gave the panels scrollbars)
    return w.Layout(width="auto", max_width="100%")


# ------------------------------------------------------------------ options that depend on the pool
_PAGE_SIZES = ("4KiB", "16KiB", "64KiB", "256KiB", "1MiB", "2MiB")
_POOL_SIZES = ("4MiB", "16MiB", "64MiB", "256MiB", "1GiB")
_SPEEDS = (("max", 0), ("1 step", 1), ("4 steps", 4), ("16 steps", 16), ("64 steps", 64))
PACES = (("real time ×0.5", 0.5), ("real time ×1", 1.0), ("real time ×2", 2.0), ("real time ×5", 5.0),
         ("real time ×20", 20.0), ("max", 0.0))  # simulated seconds per second; 0: as fast as it runs
AT_END = ("stop", "loop")


def _budgets(dash: Dashboard) -> list[tuple[str, int]]:
    ps = dash.pool.page_size
    return [("default step", 0)] + [(f"{n} page{'s' * (n > 1)} · {format_size(n * ps)}", n * ps)
                                    for n in (1, 4, 16, 64, 256)]


def _workload_choice(name: str, default: str) -> Callable[[Dashboard], Sequence[str]]:
    """The workload's registry ``name``, read when a dashboard with a simulator is built (the widget
    imports without the workload; without a simulator the control is greyed out on its default)."""
    def options(dash: Dashboard) -> Sequence[str]:
        if dash.sim is None:
            return (default,)
        from .. import workload

        return tuple(getattr(workload, name))
    return options


def _strategies(dash: Dashboard) -> list[str]:
    # offer what this PoolConfig accepts (the compactor may know more than the config)
    ok = []
    for s in STRATEGIES:
        try:
            dash.pool.config.replace(compaction_strategy=s)
            ok.append(s)
        except ValueError:
            continue
    return ok


def _paces(dash: Dashboard) -> list[tuple[str, float]]:
    known = [p for _, p in PACES]
    extra = [] if dash.pace in known else [(f"real time ×{dash.pace:g}", dash.pace)]
    return sorted([*PACES, *extra], key=lambda o: o[1] or float("inf"))


def _page_size(dash: Dashboard) -> str:
    return format_size(dash.pool.page_size)


def _pool_size(dash: Dashboard) -> str:
    return format_size(dash.pool.config.memory_pool_initial_size)


def _with(options: tuple[str, ...], current: str) -> list[str]:
    return list(options) if current in options else sorted([*options, current], key=parse_size)


def _set_heat_metric(dash: Dashboard, value: str) -> None:
    dash.heatmap.metric = value
    dash.heatmap.clear()  # one metric per history


def _set_fps(dash: Dashboard, value: int) -> None:
    dash.loop.fps = float(value)


def _set_speed(dash: Dashboard, value: int) -> None:
    dash.steps_per_frame = int(value)


def _set_pace(dash: Dashboard, value: float) -> None:
    dash.set_pace(value)


def _set_at_end(dash: Dashboard, value: str) -> None:
    dash.at_end = value


def _set_color_by(dash: Dashboard, value: str) -> None:
    dash.page_map.color_by = value


# ------------------------------------------------------------------ when a control has no effect
def _unless_eager(dash: Dashboard) -> str | None:
    mode = dash.pool.config.compaction
    return None if mode == "eager" else f"compaction is {mode!r}: only 'eager' runs periodic steps"


def _unless_on(dash: Dashboard) -> str | None:
    return "compaction is 'off': failed allocations never compact" if dash.pool.config.compaction == "off" else None


def _unless_pending(dash: Dashboard) -> str | None:
    return None if dash.rebuild_pending() else "page size and pool size are the pool's: nothing to rebuild"


_COMPACTION, _POOL, _WORKLOAD = "Compaction", "Allocator & pool", "Workload & view"

CONTROLS: tuple[Control, ...] = (
    Control("play", "Play", "action", toggle("play", "96px", "success"), "bar",
            "Run the live loop: step the simulator (or tick the pool) and draw. At the end of the trace it stops "
            "(or loops: 'at the end'); Play after the end starts a fresh run",
            act=lambda d, on: d.play_toggled(on)),
    Control("step", "Step", "action", button("step-forward", "86px"), "bar",
            "One simulator step (or one pool tick), then one frame", act=lambda d, _: d.step()),
    Control("compact", "Compact now", "action", button("compress", "130px", "warning"), "bar",
            "Compact the whole pool now with the chosen strategy (a 'manual' compaction; works in every mode)",
            act=lambda d, _: d.compact_now()),
    Control("reset", "Reset", "action", button("undo", "86px"), "bar",
            "A fresh run: the pool and simulator rebuilt with the same config and seed; every counter, panel "
            "and chart back to zero (a plain pool keeps its blocks; its counters restart from zero on screen)",
            act=lambda d, _: d.reset()),
    Control("compaction", "compaction", "pool", toggles(), _COMPACTION,
            "off: never compact by itself · lazy: compact when an allocation fails (free-ratio and "
            "max-failures triggers) · eager: also every defrag interval when fragmentation passes the "
            "threshold, in budgeted steps", options=COMPACTION_MODES),
    Control("compaction_strategy", "strategy", "pool", dropdown(), _COMPACTION,
            "How blocks move: two_finger (fewest moves, order not kept) or sliding (address order kept); "
            "used by 'Compact now' and eager steps", options=_strategies),
    Control("fragmentation_threshold_factor", "defrag threshold", "pool", slider(0.0, 1.0, 0.05), _COMPACTION,
            "Eager mode: a periodic check compacts when external fragmentation is above this. "
            "No effect unless compaction is 'eager'", idle=_unless_eager),
    Control("free_ratio_trigger", "free-ratio trigger", "pool", slider(0.0, 1.0, 0.05), _COMPACTION,
            "A failed allocation compacts when more than this share of the pool is free (but in pieces). "
            "No effect when compaction is 'off'", idle=_unless_on),
    Control("max_consecutive_failures", "max failures", "pool", int_slider(1, 20), _COMPACTION,
            "A failed allocation compacts when it is this many failures in a row. "
            "No effect when compaction is 'off'", idle=_unless_on),
    Control("compaction_budget_bytes", "step budget", "pool", dropdown(), _COMPACTION,
            "Bytes one eager compaction step may move (the pause a step may cost). "
            "No effect unless compaction is 'eager' ('Compact now' always runs to the end)",
            options=_budgets, value=lambda d: d.pool.config.compaction_budget_bytes or 0,
            to_config=lambda v: v or None, idle=_unless_eager),
    Control("fit", "fit", "pool", toggles(), _POOL,
            "Which free run an allocation takes: the first long enough, or the smallest long enough",
            options=FITS),
    Control("coalesce", "coalesce", "pool", toggles(), _POOL,
            "eager: merge neighbouring free runs at every free · lazy: merge them when an allocation needs it",
            options=COALESCE_MODES),
    Control("page_size", "page size", "rebuild", dropdown(), _POOL,
            "Bytes per page of a new pool: takes effect with 'Apply', which starts a fresh run",
            options=lambda d: _with(_PAGE_SIZES, _page_size(d)), value=_page_size),
    Control("memory_pool_initial_size", "pool size", "rebuild", dropdown(), _POOL,
            "Initial size of a new pool: takes effect with 'Apply'. A fixed pool stays fixed (max size = this); "
            "a growable one may grow to max(old max size, this)",
            options=lambda d: _with(_POOL_SIZES, _pool_size(d)), value=_pool_size),
    Control("apply", "Apply (rebuild pool)", "action", button("refresh", "auto"), _POOL,
            "Build a new pool (and simulator) with this page and pool size: a fresh run",
            act=lambda d, _: d.rebuild(), idle=_unless_pending),
    Control("kv_layout", "KV layout", "sim", toggles("92px"), _WORKLOAD,
            "contiguous: one block per sequence, copied when it grows · paged: fixed-size KV blocks. "
            "Applies to sequences admitted from now on", options=_workload_choice("LAYOUTS", "contiguous"),
            default="contiguous"),
    Control("cache_reuse_strategy", "cache reuse", "sim", dropdown(), _WORKLOAD,
            "What happens to a finished request's KV: none (freed), lru (kept as evictable cache, least "
            "recently used evicted first), ttl (kept until it expires), lfu (least frequently used first)",
            options=_workload_choice("REUSE_STRATEGIES", "none"), default="none"),
    Control("request_rate_scale", "request rate ×", "sim", log_slider(-1, 1, 0.05), _WORKLOAD,
            "Replays the trace's arrivals this many times faster (load, not the pace you watch at)", default=1.0),
    Control("pace", "pace", "view", dropdown(), _WORKLOAD,
            "Simulated seconds per second of your time ('max': as fast as the simulator runs)",
            options=_paces, value=lambda d: d.pace, act=_set_pace, needs_sim=True),
    Control("steps_per_frame", "sim steps / frame", "view", dropdown(), _WORKLOAD,
            "At most this many simulator steps between two frames ('max': as many as the pace allows)",
            options=_SPEEDS, value=lambda d: d.steps_per_frame, act=_set_speed, needs_sim=True),
    Control("at_end", "at the end", "view", toggles(), _WORKLOAD,
            "When the trace has been served: stop the loop, or start a fresh run of it (loop)",
            options=AT_END, value=lambda d: d.at_end, act=_set_at_end, needs_sim=True),
    Control("color_by", "colour pages by", "view", toggles(), _WORKLOAD,
            "Page map colours: page state, the block's tag, or the block's age", options=COLOR_MODES,
            value=lambda d: d.page_map.color_by, act=_set_color_by),
    Control("heat_metric", "heatmap shows", "view", toggles(), _WORKLOAD,
            "Heatmap colour: the free share of each address bucket, or its holes (free runs starting there); "
            "a change starts a new history", options=METRICS, value=lambda d: d.heatmap.metric,
            act=_set_heat_metric),
    Control("fps", "frames / s", "view", int_slider(1, 30), _WORKLOAD,
            "Frames drawn per second while playing (the pace sets how fast simulated time runs)",
            value=lambda d: int(d.loop.fps), act=_set_fps),
)
PANELS = (_COMPACTION, _POOL, _WORKLOAD)


def fields(target: Target) -> tuple[str, ...]:
    """The names of the controls of one target, in table order."""
    return tuple(c.name for c in CONTROLS if c.target == target)


def options_of(control: Control, dash: Dashboard) -> Sequence[Any] | None:
    return control.options(dash) if callable(control.options) else control.options


def value_of(control: Control, dash: Dashboard) -> Any:
    if control.value is not None:
        return control.value(dash)
    if control.target == "pool":
        return getattr(dash.pool.config, control.name)
    if control.target == "sim":
        return getattr(dash.sim.config, control.name) if dash.sim is not None else control.default
    return None


def idle_reason(control: Control, dash: Dashboard) -> str | None:
    """Why ``control`` has no effect on this dashboard now (it is greyed out), or None."""
    if (control.target == "sim" or control.needs_sim) and dash.sim is None:
        return "needs a simulator: this dashboard shows a plain pool"
    return control.idle(dash) if control.idle is not None else None


def show_idle(control: Control, widget: w.DOMWidget, dash: Dashboard) -> None:
    """Grey ``widget`` out while it has no effect, its tooltip saying why."""
    reason = idle_reason(control, dash)
    tip = control.help if reason is None else f"{control.help}\n(no effect now: {reason})"
    if widget.tooltip != tip:
        widget.tooltip = tip
    if widget.disabled != (reason is not None):
        widget.disabled = reason is not None


def make_control(control: Control, dash: Dashboard) -> w.DOMWidget:
    """The widget of one row (its tooltip and greying follow once every control exists: `show_idle`)."""
    widget = control.factory(control.label, value_of(control, dash), options_of(control, dash))
    widget.tooltip = control.help
    return widget

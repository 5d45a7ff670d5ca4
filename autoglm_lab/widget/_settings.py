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

__all__ = ["Control", "CONTROLS", "PANELS", "Target", "make_control", "options_of", "value_of", "fields"]

Target = Literal["pool", "sim", "rebuild", "view", "action"]
# (label, value, options) -> the control
Factory = Callable[[str, Any, Sequence[Any] | None], w.DOMWidget]
Options = Sequence[Any] | Callable[["Dashboard"], Sequence[Any]]

_FIELD_STYLE = {"description_width": "118px"}
_FIELD_WIDTH = "310px"


@dataclass(frozen=True)
class Control:
    name: str                      # Dashboard.set() key; the config field for pool / sim targets
    label: str
    target: Target
    factory: Factory
    panel: str                     # "bar" (beside the title) or a panel's heading
    options: Options | None = None  # a sequence, or a function of the dashboard (recomputed on rebuild)
    value: Callable[[Dashboard], Any] | None = None  # initial value, when not the target's field
    act: Callable[[Dashboard, Any], Any] | None = None  # view / action targets: what a value does
    to_config: Callable[[Any], Any] | None = None  # pool / sim: the control's value -> the field's
    default: Any = None            # sim targets: the value shown without a simulator
    needs_sim: bool = False        # disabled without a simulator (sim targets always are)


# ------------------------------------------------------------------ widget factories
def slider(low: float, high: float, step: float, tooltip: str = "") -> Factory:
    def make(label: str, value: Any, _options: Sequence[Any] | None) -> w.DOMWidget:
        return GuardedFloatSlider(value=value, min=low, max=high, step=step, description=label,
                                  style=_FIELD_STYLE, layout=w.Layout(width=_FIELD_WIDTH),
                                  **({"tooltip": tooltip} if tooltip else {}))
    return make


def log_slider(low_exp: float, high_exp: float, step: float) -> Factory:
    def make(label: str, value: Any, _options: Sequence[Any] | None) -> w.DOMWidget:
        return GuardedFloatLogSlider(value=value, base=10, min=low_exp, max=high_exp, step=step, description=label,
                                     style=_FIELD_STYLE, layout=w.Layout(width=_FIELD_WIDTH))
    return make


def int_slider(low: int, high: int) -> Factory:
    def make(label: str, value: Any, _options: Sequence[Any] | None) -> w.DOMWidget:
        return GuardedIntSlider(value=value, min=low, max=high, description=label, style=_FIELD_STYLE,
                                layout=w.Layout(width=_FIELD_WIDTH))
    return make


def dropdown() -> Factory:
    def make(label: str, value: Any, options: Sequence[Any] | None) -> w.DOMWidget:
        return GuardedDropdown(options=list(options or ()), value=value, description=label, style=_FIELD_STYLE,
                               layout=w.Layout(width=_FIELD_WIDTH))
    return make


def toggles(button_width: str = "62px") -> Factory:
    def make(label: str, value: Any, options: Sequence[Any] | None) -> w.DOMWidget:
        return GuardedToggleButtons(options=list(options or ()), value=value, description=label,
                                    style={**_FIELD_STYLE, "button_width": button_width})
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


# ------------------------------------------------------------------ options that depend on the pool
_PAGE_SIZES = ("4KiB", "16KiB", "64KiB", "256KiB", "1MiB", "2MiB")
_POOL_SIZES = ("4MiB", "16MiB", "64MiB", "256MiB", "1GiB")
_SPEEDS = (("max", 0), ("1 step", 1), ("4 steps", 4), ("16 steps", 16), ("64 steps", 64))


def _budgets(dash: Dashboard) -> list[tuple[str, int]]:
    ps = dash.pool.page_size
    return [("default step", 0)] + [(f"{n} page{'s' * (n > 1)} · {format_size(n * ps)}", n * ps)
                                    for n in (1, 4, 16, 64, 256)]


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


def _page_size(dash: Dashboard) -> str:
    return format_size(dash.pool.page_size)


def _pool_size(dash: Dashboard) -> str:
    return format_size(int(dash.pool.config.memory_pool_initial_size))  # type: ignore[arg-type]


def _with(options: tuple[str, ...], current: str) -> list[str]:
    return list(options) if current in options else sorted([*options, current], key=parse_size)


def _set_heat_metric(dash: Dashboard, value: str) -> None:
    dash.heatmap.metric = value
    dash.heatmap.clear()  # one metric per history


def _set_fps(dash: Dashboard, value: int) -> None:
    dash.loop.fps = float(value)


def _set_speed(dash: Dashboard, value: int) -> None:
    dash.steps_per_frame = int(value)


def _set_color_by(dash: Dashboard, value: str) -> None:
    dash.page_map.color_by = value


_COMPACTION, _POOL, _WORKLOAD = "Compaction", "Allocator & pool", "Workload & view"

CONTROLS: tuple[Control, ...] = (
    Control("play", "Play", "action", toggle("play", "96px", "success"), "bar", act=lambda d, on: d._on_play(on)),
    Control("step", "Step", "action", button("step-forward", "86px"), "bar", act=lambda d, _: d.step()),
    Control("compact", "Compact now", "action", button("compress", "130px", "warning"), "bar",
            act=lambda d, _: d.compact_now()),
    Control("reset", "Reset", "action", button("undo", "86px"), "bar", act=lambda d, _: d.reset()),
    Control("compaction", "compaction", "pool", toggles(), _COMPACTION, options=COMPACTION_MODES),
    Control("compaction_strategy", "strategy", "pool", dropdown(), _COMPACTION, options=_strategies),
    Control("fragmentation_threshold_factor", "defrag threshold", "pool",
            slider(0.0, 1.0, 0.05, "fragmentation_threshold_factor: compact when external fragmentation passes this"),
            _COMPACTION),
    Control("free_ratio_trigger", "free-ratio trigger", "pool", slider(0.0, 1.0, 0.05), _COMPACTION),
    Control("max_consecutive_failures", "max failures", "pool", int_slider(1, 20), _COMPACTION),
    Control("compaction_budget_bytes", "step budget", "pool", dropdown(), _COMPACTION, options=_budgets,
            value=lambda d: d.pool.config.compaction_budget_bytes or 0, to_config=lambda v: v or None),
    Control("fit", "fit", "pool", toggles(), _POOL, options=FITS),
    Control("coalesce", "coalesce", "pool", toggles(), _POOL, options=COALESCE_MODES),
    Control("page_size", "page size", "rebuild", dropdown(), _POOL,
            options=lambda d: _with(_PAGE_SIZES, _page_size(d)), value=_page_size),
    Control("memory_pool_initial_size", "pool size", "rebuild", dropdown(), _POOL,
            options=lambda d: _with(_POOL_SIZES, _pool_size(d)), value=_pool_size),
    Control("apply", "Apply (rebuild pool)", "action", button("refresh", "300px"), _POOL,
            act=lambda d, _: d._rebuild()),
    Control("kv_layout", "KV layout", "sim", toggles("92px"), _WORKLOAD, options=("contiguous", "paged"),
            default="contiguous"),
    Control("cache_reuse_strategy", "cache reuse", "sim", dropdown(), _WORKLOAD, options=("none", "lru", "ttl"),
            default="none"),
    Control("request_rate_scale", "request rate ×", "sim", log_slider(-1, 1, 0.05), _WORKLOAD, default=1.0),
    Control("steps_per_frame", "sim steps / frame", "view", dropdown(), _WORKLOAD, options=_SPEEDS,
            value=lambda d: d.steps_per_frame, act=_set_speed, needs_sim=True),
    Control("color_by", "colour pages by", "view", toggles(), _WORKLOAD, options=COLOR_MODES,
            value=lambda d: d.page_map.color_by, act=_set_color_by),
    Control("heat_metric", "heatmap shows", "view", toggles(), _WORKLOAD, options=METRICS,
            value=lambda d: d.heatmap.metric, act=_set_heat_metric),
    Control("fps", "frames / s", "view", int_slider(1, 30), _WORKLOAD, value=lambda d: int(d.loop.fps), act=_set_fps),
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


def make_control(control: Control, dash: Dashboard) -> w.DOMWidget:
    widget = control.factory(control.label, value_of(control, dash), options_of(control, dash))
    if (control.target == "sim" or control.needs_sim) and dash.sim is None:
        widget.disabled = True
    return widget

"""The compactor: plan (pure: layout -> moves), execute (batched device copies), policy (triggers).

``pool.compact(...)`` and ``pool.tick(now)`` are the usual entry points; this package also exposes
the planner for tests, notebooks and benchmarks that want a plan without touching a device.
"""

from ._api import DEFAULT_STEP_BUDGET_BYTES, compact, safe_moves
from ._layout import Layout, SegmentLayout, layout_of
from ._plan import STRATEGIES, Move, Plan, Stage, plan, plan_slide_from, plan_sliding, plan_targeted, plan_two_finger
from ._policy import failure_trigger, tick
from ._report import CompactionReport

__all__ = [
    "CompactionReport", "DEFAULT_STEP_BUDGET_BYTES", "Layout", "Move", "Plan", "STRATEGIES",
    "SegmentLayout", "Stage", "compact", "failure_trigger", "layout_of", "plan", "plan_slide_from", "plan_sliding",
    "plan_targeted", "plan_two_finger", "safe_moves", "tick",
]

"""The compactor: plan (pure: layout -> moves), execute (batched device copies), policy (triggers),
offered to the pool as a service (`Compactor`, the pool's `CompactionService`).

``pool.compact(...)`` and ``pool.tick(now)`` are the usual entry points; this package also exposes
the planner for tests, notebooks and benchmarks that want a plan without touching a device.
Importing it makes `Compactor` the default service of new pools.
"""

from ..pool import set_default_compaction_service
from ._api import DEFAULT_STEP_BUDGET_BYTES, CompactorState, safe_moves
from ._layout import Layout, SegmentLayout, layout_of
from ._plan import STRATEGIES, Move, Plan, Stage, plan, plan_slide_from, plan_sliding, plan_targeted, plan_two_finger
from ._policy import Compactor, compact, failure_trigger, tick
from ._report import CompactionReport

set_default_compaction_service(Compactor)

__all__ = [
    "CompactionReport", "Compactor", "CompactorState", "DEFAULT_STEP_BUDGET_BYTES", "Layout", "Move", "Plan",
    "STRATEGIES",
    "SegmentLayout", "Stage", "compact", "failure_trigger", "layout_of", "plan", "plan_slide_from", "plan_sliding",
    "plan_targeted", "plan_two_finger", "safe_moves", "tick",
]

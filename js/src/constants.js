// Generated from the Python registries by `python -m autoglm_lab.widget._registry`: do not edit.
// (tests/widget/test_registry.py fails when this file lags behind them.)

export const COLOR_MODES = Object.freeze(["state", "tag", "age"]);
export const HEAT_METRICS = Object.freeze(["free", "holes"]);
export const HEAT_MARK = Object.freeze({"COMPACT": 1, "FAIL": 2, "REASON_SHIFT": 2});
export const EVENT_CODE = Object.freeze({"KIND_MASK": 15, "REASON_SHIFT": 4});
export const PAGE_STATE = Object.freeze({"FREE": 0, "USED": 1, "TAIL": 2, "PINNED": 3, "CACHED": 4});
export const EVENT_KIND = Object.freeze({"ALLOC": 0, "FREE": 1, "FAIL": 2, "GROW": 3, "RELEASE": 4, "COMPACT": 5, "CONFIG": 6, "STEP": 7});
export const COMPACT_REASONS = Object.freeze(["manual", "free_ratio", "consecutive_failures", "periodic", "alloc_failure"]);
export const WIRE = Object.freeze({"PAGE_MAGIC": "PGF1", "HEAT_MAGIC": "HMP1", "TRACE_MAGIC": "LTR1", "HEADER_BYTES": 32, "FULL": 0, "DELTA": 1, "HEAT_FULL": 0, "HEAT_APPEND": 1, "TRACE_FULL": 0, "TRACE_APPEND": 1});
export const VIEW_MODULES = Object.freeze(["pagemap", "heatmap", "trace"]);

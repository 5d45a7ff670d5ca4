"""The serving workload: an LLM server simulator whose KV cache lives in a `PagedPool`.

```python
sim = ServingSim(pool, ServingConfig(kv_layout="paged", cache_reuse_strategy="lru"),
                 requests=load_trace("trace.csv", time_scale=10))
sim.run(steps=500); sim.summary(); sim.results(); sim.recent_steps(256)
```
"""

from ._config import COMPUTE_MODES, REUSE_STRATEGIES, ServingConfig
from ._demo import (
    DEMO_LIMIT,
    DEMO_TIME_SCALE,
    demo_requests,
    demo_setup,
    demo_trace_path,
    mooncake_trace_path,
    shipped_trace_path,
)
from ._kv import LAYOUTS, ContiguousKV, KVLayout, PagedKV, SeqKV
from ._model import ModelConfig, TinyGLM
from ._records import RECENT_KEYS, RunMetrics, StepRecord
from ._requests import MAX_ARRIVAL_S, MAX_TOKENS, Request, check_requests, check_synthetic_args, synthetic_requests
from ._sim import ServingSim
from ._summary import SUMMARY_LABELS, slowdown_ratio
from ._trace import TraceError, load_trace

__all__ = [
    "ServingSim", "ServingConfig", "StepRecord", "RunMetrics", "RECENT_KEYS", "SUMMARY_LABELS", "slowdown_ratio",
    "LAYOUTS", "REUSE_STRATEGIES", "COMPUTE_MODES",
    "TinyGLM", "ModelConfig",
    "Request", "synthetic_requests", "check_requests", "check_synthetic_args", "load_trace", "TraceError",
    "MAX_TOKENS", "MAX_ARRIVAL_S",
    "KVLayout", "ContiguousKV", "PagedKV", "SeqKV",
    "DEMO_LIMIT", "DEMO_TIME_SCALE", "demo_setup", "demo_requests", "demo_trace_path", "shipped_trace_path",
    "mooncake_trace_path",
]

"""Auto-tuning: sweep pool and serving parameters, find the utilisation/latency trade-off.

```python
from autoglm_lab.tuning import Workload, tune

res = tune({"memory_pool_initial_size": ["2MiB", "4MiB"], "compaction": ["off", "lazy"]},
           Workload(steps=300, seed=1), objective="ttft_p99_s")
res.results; res.pareto(); pool_cfg, serving_cfg = res.best_config(); res.figure()
```

Trials run on any `concurrent.futures.Executor` (processes by default; ``client.get_executor()`` of
a Dask cluster); results are the same whichever runs them.
"""

from ._figure import tradeoff_figure
from ._pareto import SENSES, objective_scores, pareto_front, pareto_mask
from ._space import DEFAULT_POOL, DEFAULT_SERVING, POOL_FIELDS, SERVING_FIELDS, Trial, build_configs
from ._trial import METRICS, WALL_COLUMNS, run_trial
from ._tune import TuneResult, default_executor, tune
from ._workload import Workload

__all__ = [
    "tune", "TuneResult", "Workload", "default_executor",
    "pareto_front", "pareto_mask", "objective_scores", "tradeoff_figure",
    "run_trial", "Trial", "build_configs", "METRICS", "WALL_COLUMNS", "SENSES",
    "DEFAULT_POOL", "DEFAULT_SERVING", "POOL_FIELDS", "SERVING_FIELDS",
]

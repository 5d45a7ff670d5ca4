"""The summary's percentiles are numpy's, float for float (its own sort-once implementation)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoglm_lab.workload._summary import _pcts


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 101, 1575, 4096])
def test_the_percentiles_equal_numpys(n: int) -> None:
    rng = np.random.default_rng(n)
    for values in (rng.lognormal(size=n), np.round(rng.lognormal(size=n) * 1e3, 1), np.full(n, 0.25)):
        assert _pcts(list(values)) == tuple(float(x) for x in np.percentile(values, (50, 99)))


def test_no_values_give_nan() -> None:
    assert all(math.isnan(x) for x in _pcts([]))

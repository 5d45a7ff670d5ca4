from __future__ import annotations

import math

import pandas as pd
import pytest

from autoglm_lab.tuning import objective_scores, pareto_front, pareto_mask, tradeoff_figure

# x: utilisation (higher is better), y: latency (lower is better).
#   0 (0.5, 1.0)  front: lowest latency
#   1 (0.6, 2.0)  front
#   2 (0.7, 3.0)  dominated by 3 (same x, lower y)
#   3 (0.7, 2.5)  front
#   4 (0.4, 1.5)  dominated by 0
#   5 (0.9, nan)  no latency: counts as worst -> dominated by nobody with x=0.9? nobody has x >= 0.9, front
#   6 (0.6, 2.0)  equal to 1: both kept
#   7 (0.8, 4.0)  front (second highest utilisation)
TABLE = pd.DataFrame({
    "trial": range(8),
    "mean_utilisation": [0.5, 0.6, 0.7, 0.7, 0.4, 0.9, 0.6, 0.8],
    "ttft_p99_s": [1.0, 2.0, 3.0, 2.5, 1.5, math.nan, 2.0, 4.0],
    "failures": [3, 0, 1, 2, 0, 5, 0, 4],
})


def test_pareto_front_on_a_known_table():
    assert list(pareto_mask(TABLE)) == [True, True, False, True, False, True, True, True]
    assert list(pareto_front(TABLE)["trial"]) == [0, 1, 6, 3, 7, 5]


def test_pareto_front_with_other_directions():
    # Both minimised: lowest utilisation and lowest latency -> trial 0 (0.5, 1.0) and trial 4 (0.4, 1.5).
    mask = pareto_mask(TABLE, maximize_x=False)
    assert sorted(TABLE["trial"][mask]) == [0, 4]
    with pytest.raises(ValueError, match="no column 'p99'"):
        pareto_mask(TABLE, y="p99")


def test_objectives():
    assert TABLE.loc[objective_scores(TABLE, "ttft_p99_s").idxmin(), "trial"] == 0
    assert TABLE.loc[objective_scores(TABLE, "max:mean_utilisation").idxmin(), "trial"] == 5
    assert TABLE.loc[objective_scores(TABLE, "max:ttft_p99_s").idxmin(), "trial"] == 7  # NaN is never best
    assert objective_scores(TABLE, "failures").idxmin() == 1  # tie on 0: the first row
    custom = objective_scores(TABLE, lambda df: df["ttft_p99_s"] / df["mean_utilisation"])
    assert custom.idxmin() == 0 and math.isinf(custom[5])
    with pytest.raises(ValueError, match="prefix must be"):
        objective_scores(TABLE, "most:failures")


def test_tradeoff_figure_highlights_the_front():
    fig = tradeoff_figure(TABLE)
    names = [t.name for t in fig.data]
    assert names == ["trials", "Pareto front"]
    assert sorted(fig.data[0].x) == [0.4, 0.7]
    assert list(fig.data[1].x) == [0.5, 0.6, 0.6, 0.7, 0.8, 0.9]


def test_result_figure_marks_the_best(serial_result):
    fig = serial_result.figure()
    assert [t.name for t in fig.data] == ["trials", "Pareto front", "best (ttft_p99_s)"]
    best = serial_result.best()
    assert fig.data[2].x[0] == best["mean_utilisation"] and fig.data[2].y[0] == best["ttft_p99_s"]
    assert len(fig.data[1].x) == len(serial_result.pareto())
    assert "trial" in fig.data[1].hovertext[0] and "page_size" in fig.data[1].hovertext[0]

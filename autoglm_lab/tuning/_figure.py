"""`tradeoff_figure`: memory utilisation against latency, every trial a point, the Pareto front a line."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

from ._pareto import pareto_mask

if TYPE_CHECKING:
    from ._tune import TuneResult

__all__ = ["tradeoff_figure"]

_LABELS = {"mean_utilisation": "mean memory utilisation", "ttft_p99_s": "p99 time to first token (s)"}


def _hover(df: pd.DataFrame, params: tuple[str, ...]) -> list[str]:
    return ["<br>".join([f"trial {int(r['trial'])}", *(f"{p} = {r[p]}" for p in params)]) for _, r in df.iterrows()]


def tradeoff_figure(result: TuneResult | pd.DataFrame, x: str = "mean_utilisation", y: str = "ttft_p99_s", *,
                    params: tuple[str, ...] | None = None, title: str | None = None) -> go.Figure:
    """Scatter of ``y`` against ``x`` for every trial; the Pareto front (higher ``x``, lower ``y``) drawn
    as a highlighted line; the best trial of a `TuneResult`'s objective marked with a star."""
    df = result if isinstance(result, pd.DataFrame) else result.results
    if params is None:
        params = () if isinstance(result, pd.DataFrame) else result.params
    mask = pareto_mask(df, x, y)
    front = df[mask].sort_values([x, y])
    rest = df[~mask]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=rest[x], y=rest[y], mode="markers", name="trials",
                             marker={"color": "#9aa5b1", "size": 8}, hovertext=_hover(rest, params),
                             hoverinfo="text"))
    fig.add_trace(go.Scatter(x=front[x], y=front[y], mode="lines+markers", name="Pareto front",
                             line={"color": "#d62728", "width": 2}, marker={"color": "#d62728", "size": 10},
                             hovertext=_hover(front, params), hoverinfo="text"))
    if not isinstance(result, pd.DataFrame):
        best = result.best()
        fig.add_trace(go.Scatter(x=[best[x]], y=[best[y]], mode="markers", name=f"best ({_name(result.objective)})",
                                 marker={"symbol": "star", "size": 18, "color": "#ffbf00",
                                         "line": {"color": "black", "width": 1}},
                                 hovertext=_hover(best.to_frame().T, params), hoverinfo="text"))
    fig.update_layout(title=title or "Memory utilisation vs latency", template="plotly_white",
                      xaxis_title=_LABELS.get(x, x), yaxis_title=_LABELS.get(y, y), legend={"x": 0.01, "y": 0.99})
    return fig


def _name(objective: object) -> str:
    return objective if isinstance(objective, str) else getattr(objective, "__name__", "custom")

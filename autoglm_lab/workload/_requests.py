"""`Request` and `synthetic_requests`: seeded Poisson arrivals, log-normal lengths, multi-turn sessions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Request", "synthetic_requests"]


@dataclass(frozen=True, slots=True)
class Request:
    """One turn of a conversation.

    arrival_s: seconds from the start of the workload (NaN for a follow-up turn, which arrives
        ``think_time_s`` after the turn it ``follows`` has finished).
    prompt_tokens: the whole prompt, of which the first ``prefix_tokens`` are the conversation so
        far (a cached KV of the session's previous turn can stand in for them).
    output_tokens: tokens to generate.
    """

    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    session_id: int
    turn: int = 0
    prefix_tokens: int = 0
    follows: int | None = None
    think_time_s: float = 0.0


def _lognormal(rng: np.random.Generator, median: float, sigma: float, low: int, high: int) -> int:
    return int(min(high, max(low, round(rng.lognormal(math.log(median), sigma)))))


def synthetic_requests(num_sessions: int = 200, *, rate_per_s: float = 4.0, prompt_median: int = 256,
                       prompt_sigma: float = 0.8, output_median: int = 64, output_sigma: float = 0.7,
                       turns_mean: float = 1.0, think_time_s: float = 5.0, max_tokens: int = 4096,
                       seed: int = 0) -> list[Request]:
    """Sessions arriving as a Poisson process of ``rate_per_s``; each has 1 + Poisson(turns_mean - 1) turns.

    Lengths are log-normal around the medians (clipped to ``[1, max_tokens]``). A follow-up turn
    arrives after an exponential think time (mean ``think_time_s``) and its prompt is the whole
    conversation so far plus a new user message.
    """
    if isinstance(num_sessions, bool) or not isinstance(num_sessions, int) or num_sessions < 0:
        raise ValueError(f"num_sessions={num_sessions!r} is not allowed: use an integer >= 0")
    for name, value in (("rate_per_s", rate_per_s), ("prompt_median", prompt_median),
                        ("output_median", output_median), ("think_time_s", think_time_s)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name}={value!r} is not allowed: use a finite number > 0")
    if not (isinstance(turns_mean, int | float) and 1.0 <= turns_mean <= 1000):
        raise ValueError(f"turns_mean={turns_mean!r} is not allowed: use a number from 1 to 1000")
    rng = np.random.default_rng(seed)
    out: list[Request] = []
    t = 0.0
    for sid in range(num_sessions):
        t += rng.exponential(1.0 / rate_per_s)
        turns = 1 + int(rng.poisson(turns_mean - 1.0))
        context, prev = 0, None
        for turn in range(turns):
            new = _lognormal(rng, prompt_median, prompt_sigma, 1, max_tokens)
            gen = _lognormal(rng, output_median, output_sigma, 1, max_tokens)
            rid = len(out)
            out.append(Request(
                id=rid, arrival_s=t if prev is None else math.nan, prompt_tokens=context + new,
                output_tokens=gen, session_id=sid, turn=turn, prefix_tokens=context, follows=prev,
                think_time_s=0.0 if prev is None else float(rng.exponential(think_time_s)),
            ))
            context += new + gen
            prev = rid
    return out

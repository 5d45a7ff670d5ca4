"""`Request` and `synthetic_requests`: seeded Poisson arrivals, log-normal lengths, multi-turn sessions.

Every `Request` is validated when it is made (`Request.__post_init__`), whichever entry point made it
(a trace, `synthetic_requests`, a notebook), and `check_requests` validates a list as a whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..pool import check_int, check_number, is_number

__all__ = ["Request", "synthetic_requests", "check_requests", "MAX_TOKENS", "MAX_ARRIVAL_S"]

# The largest ServingConfig.max_context_length: a longer prompt could never be served.
MAX_TOKENS = 1 << 24
# About 32 years; beyond that a float clock no longer resolves microseconds.
MAX_ARRIVAL_S = 1e9
MAX_SESSIONS = 10_000_000


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


@dataclass(frozen=True, slots=True)
class Request:
    """One turn of a conversation (validated on creation: TypeError/ValueError naming the field).

    id: an integer >= 0, unique within a workload.
    arrival_s: seconds from the start of the workload, finite, from 0 to `MAX_ARRIVAL_S`; NaN for a
        follow-up turn, which arrives ``think_time_s`` after the turn it ``follows`` has finished.
    prompt_tokens: the whole prompt (1 to `MAX_TOKENS`), of which the first ``prefix_tokens`` are the
        conversation so far (a cached KV of the session's previous turn can stand in for them).
    output_tokens: tokens to generate (1 to `MAX_TOKENS`).
    session_id, turn: integers >= 0; follows: None or the id of the previous turn.
    think_time_s: finite, from 0 to `MAX_ARRIVAL_S`.
    block_hashes: ids of the prompt's leading blocks of ``hash_block_tokens`` tokens each, as a hash
        chain: two requests whose block ``i`` has the same id share tokens ``[0, (i + 1) x
        hash_block_tokens)`` (the Mooncake trace's ``hash_ids``; the last block may be partial). At most
        ceil(prompt_tokens / hash_block_tokens) distinct integers >= 0; a list is stored as a tuple.
    hash_block_tokens: tokens per hashed block (1 to `MAX_TOKENS`; 512 in the Mooncake trace).
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
    block_hashes: tuple[int, ...] = ()
    hash_block_tokens: int = 512

    def __post_init__(self) -> None:
        where = "Request: "
        check_int("hash_block_tokens", self.hash_block_tokens, 1, MAX_TOKENS, where)
        check_int("id", self.id, 0, 2**63 - 1, where)
        check_int("prompt_tokens", self.prompt_tokens, 1, MAX_TOKENS, where)
        check_int("output_tokens", self.output_tokens, 1, MAX_TOKENS, where)
        check_int("session_id", self.session_id, 0, 2**63 - 1, where)
        check_int("turn", self.turn, 0, 2**63 - 1, where)
        check_int("prefix_tokens", self.prefix_tokens, 0, self.prompt_tokens, where)
        if self.follows is not None:
            check_int("follows", self.follows, 0, 2**63 - 1, where)
            if self.follows == self.id:
                raise ValueError(f"{where}follows={self.follows!r} is not allowed: a turn cannot follow itself")
        check_number("think_time_s", self.think_time_s, 0.0, MAX_ARRIVAL_S, where)
        if self.block_hashes:
            self._check_hashes(where)
        # A first turn's arrival drives the clock (NaN or inf would stall it); a follow-up's is unused.
        if self.follows is not None and is_number(self.arrival_s) and math.isnan(self.arrival_s):
            return
        try:
            check_number("arrival_s", self.arrival_s, 0.0, MAX_ARRIVAL_S, where)
        except (TypeError, ValueError) as err:
            extra = " (NaN only for a follow-up turn, one with follows set)" if self.follows is None else " or NaN"
            raise type(err)(f"{err}{extra}") from None

    def _check_hashes(self, where: str) -> None:
        hashes = self.block_hashes
        if isinstance(hashes, list):
            hashes = tuple(hashes)
            object.__setattr__(self, "block_hashes", hashes)
        ids = f"use integers from 0 to {2**63 - 1}"
        if not isinstance(hashes, tuple):
            raise TypeError(f"{where}block_hashes={_short(hashes)} is not allowed: use a tuple of integers >= 0")
        bad = next((h for h in hashes if type(h) is not int), None)  # bool refused too
        if bad is not None:
            raise TypeError(f"{where}block_hashes holds {bad!r} ({type(bad).__name__}), which is not allowed: {ids}")
        low, high = min(hashes), max(hashes)
        if low < 0 or high > 2**63 - 1:
            raise ValueError(f"{where}block_hashes holds {low if low < 0 else high}, which is not allowed: {ids}")
        most = -(-self.prompt_tokens // self.hash_block_tokens)
        if len(hashes) > most:
            raise ValueError(f"{where}block_hashes has {len(hashes)} ids, which is not allowed: a "
                             f"{self.prompt_tokens}-token prompt has at most {most} blocks of "
                             f"hash_block_tokens={self.hash_block_tokens}")
        if len(set(hashes)) != len(hashes):
            seen: dict[int, int] = {}
            for i, h in enumerate(hashes):
                if h in seen:
                    raise ValueError(f"{where}block_hashes has id {h} at positions {seen[h]} and {i}, which is not "
                                     f"allowed: a hash chain never repeats a block")
                seen[h] = i


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:60]}..."


def check_requests(requests: Iterable[Request]) -> list[Request]:
    """``requests`` as a list, after checking it as a whole: Request items (TypeError naming the
    index), unique ids, and every follow-up turn reachable from a first turn (ValueError)."""
    if isinstance(requests, Request | str | bytes) or not isinstance(requests, Iterable):
        raise TypeError(f"requests must be an iterable of Request, not {type(requests).__name__}")
    reqs = list(requests)
    by_id: dict[int, int] = {}
    for i, r in enumerate(reqs):
        if not isinstance(r, Request):
            raise TypeError(f"requests[{i}]={r!r} is not allowed: use a Request, not {type(r).__name__}")
        if r.id in by_id:
            raise ValueError(f"requests[{i}]: id={r.id} is not allowed: requests[{by_id[r.id]}] has the same id; "
                             f"ids must be unique")
        by_id[r.id] = i
    successor: dict[int, int] = {}
    for i, r in enumerate(reqs):
        if r.follows is None:
            continue
        if r.follows not in by_id:
            raise ValueError(f"requests[{i}]: follows={r.follows} is not allowed: no request has that id")
        if r.follows in successor:
            raise ValueError(f"requests[{i}]: follows={r.follows} is not allowed: requests[{successor[r.follows]}] "
                             f"already follows that turn (one follow-up per turn)")
        successor[r.follows] = i
    # walk each conversation from its first turn: a chain without one (a cycle) would never arrive
    reached: set[int] = set()
    for i, r in enumerate(reqs):
        j: int | None = i if r.follows is None else None
        while j is not None:
            reached.add(j)
            j = successor.get(reqs[j].id)
    if len(reached) != len(reqs):
        stuck = next(i for i in range(len(reqs)) if i not in reached)
        raise ValueError(f"requests[{stuck}]: follows={reqs[stuck].follows} is not allowed: its chain of turns "
                         f"never reaches a first turn (follows=None), so it would never arrive")
    return reqs


def _lognormal(rng: np.random.Generator, median: float, sigma: float, low: int, high: int) -> int:
    # clip before rounding: a huge sigma can draw inf, which round() refuses
    return round(float(min(high, max(low, rng.lognormal(math.log(median), sigma)))))


# argument of synthetic_requests -> its check
_SYNTHETIC_CHECKS: dict[str, Callable[[str, object], None]] = {
    "num_sessions": lambda n, v: check_int(n, v, 0, MAX_SESSIONS),
    "max_tokens": lambda n, v: check_int(n, v, 1, MAX_TOKENS),
    "rate_per_s": lambda n, v: check_number(n, v, 0.0, 1e9, strict=True),
    "prompt_median": lambda n, v: check_number(n, v, 0.0, MAX_TOKENS, strict=True),
    "output_median": lambda n, v: check_number(n, v, 0.0, MAX_TOKENS, strict=True),
    "prompt_sigma": lambda n, v: check_number(n, v, 0.0, 100.0),
    "output_sigma": lambda n, v: check_number(n, v, 0.0, 100.0),
    "turns_mean": lambda n, v: check_number(n, v, 1.0, 1000.0),
    "think_time_s": lambda n, v: check_number(n, v, 0.0, MAX_ARRIVAL_S, strict=True),
    "seed": lambda n, v: check_int(n, v, 0, 2**63 - 1),
}


def check_synthetic_args(**args: object) -> None:
    """Check the given arguments of `synthetic_requests` (shared with `tuning.Workload`)."""
    for name, value in args.items():
        _SYNTHETIC_CHECKS[name](name, value)


def synthetic_requests(num_sessions: int = 200, *, rate_per_s: float = 4.0, prompt_median: int = 256,
                       prompt_sigma: float = 0.8, output_median: int = 64, output_sigma: float = 0.7,
                       turns_mean: float = 1.0, think_time_s: float = 5.0, max_tokens: int = 4096,
                       seed: int = 0) -> list[Request]:
    """Sessions arriving as a Poisson process of ``rate_per_s``; each has 1 + Poisson(turns_mean - 1) turns.

    Lengths are log-normal around the medians (clipped to ``[1, max_tokens]``). A follow-up turn
    arrives after an exponential think time (mean ``think_time_s``) and its prompt is the whole
    conversation so far plus a new user message.
    Bad arguments raise TypeError/ValueError naming the argument, the value and what is allowed,
    also when they would only produce an invalid request later (arrivals past `MAX_ARRIVAL_S`,
    conversations longer than `MAX_TOKENS`).
    """
    check_synthetic_args(num_sessions=num_sessions, rate_per_s=rate_per_s, prompt_median=prompt_median,
                         prompt_sigma=prompt_sigma, output_median=output_median, output_sigma=output_sigma,
                         turns_mean=turns_mean, think_time_s=think_time_s, max_tokens=max_tokens, seed=seed)
    rng = np.random.default_rng(seed)
    out: list[Request] = []
    t = 0.0
    for sid in range(num_sessions):
        t += rng.exponential(1.0 / rate_per_s)
        if t > MAX_ARRIVAL_S:
            raise ValueError(f"rate_per_s={rate_per_s!r} is too low for num_sessions={num_sessions}: session {sid} "
                             f"would arrive after {_num(MAX_ARRIVAL_S)} s, the latest a Request allows: use a higher "
                             f"rate_per_s or fewer sessions")
        turns = 1 + int(rng.poisson(turns_mean - 1.0))
        context, prev = 0, None
        for turn in range(turns):
            new = _lognormal(rng, prompt_median, prompt_sigma, 1, max_tokens)
            gen = _lognormal(rng, output_median, output_sigma, 1, max_tokens)
            if context + new > MAX_TOKENS:
                raise ValueError(f"max_tokens={max_tokens} with turns_mean={turns_mean!r} gives session {sid} a "
                                 f"{context + new}-token prompt at turn {turn}; a Request allows at most "
                                 f"{MAX_TOKENS:,}: lower max_tokens, the medians or turns_mean")
            think = 0.0 if prev is None else min(MAX_ARRIVAL_S, float(rng.exponential(think_time_s)))
            rid = len(out)
            out.append(Request(
                id=rid, arrival_s=t if prev is None else math.nan, prompt_tokens=context + new,
                output_tokens=gen, session_id=sid, turn=turn, prefix_tokens=context, follows=prev,
                think_time_s=think,
            ))
            context += new + gen
            prev = rid
    return out

"""Retry delays: exponential backoff with jitter (sans-I/O)."""

from __future__ import annotations

import random

from ghapplets.applets.model import RetryPolicy


def backoff_delay(
    policy: RetryPolicy,
    attempt: int,
    *,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    The ceiling grows as ``initial * factor^(attempt-1)`` up to ``max_delay``; with jitter the
    delay is drawn uniformly from ``[ceiling/2, ceiling]`` ("equal jitter"), so delays spread
    out yet still grow from one attempt to the next. A vendor's ``Retry-After`` is a lower bound.
    """
    ceiling = min(policy.max_delay, policy.initial_delay * policy.factor ** max(0, attempt - 1))
    delay = ceiling
    if policy.jitter:
        delay = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.max_delay))
    return delay


def should_retry(policy: RetryPolicy, attempt: int, retryable: bool) -> bool:
    return retryable and attempt < policy.max_attempts

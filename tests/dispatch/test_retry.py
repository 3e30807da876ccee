"""Backoff delays: growing, jittered within bounds, capped, and never below Retry-After."""

from __future__ import annotations

import itertools
import random

from ghapplets.applets.model import RetryPolicy
from ghapplets.dispatch.retry import backoff_delay, should_retry


def test_delays_grow_and_stay_within_their_jitter_bounds() -> None:
    policy = RetryPolicy(initial_delay=1, factor=2, max_delay=60, max_attempts=10)
    rng = random.Random(7)
    for _ in range(200):
        delays = [backoff_delay(policy, n, rng=rng) for n in range(1, 7)]  # below the cap
        for n, delay in enumerate(delays, start=1):
            ceiling = 2 ** (n - 1)
            assert ceiling / 2 <= delay <= ceiling
        assert all(b >= a for a, b in itertools.pairwise(delays))
        assert 30 <= backoff_delay(policy, 9, rng=rng) <= 60  # capped


def test_no_jitter_is_exact_and_capped() -> None:
    policy = RetryPolicy(initial_delay=0.5, factor=3, max_delay=10, jitter=False)
    assert [backoff_delay(policy, n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.5, 4.5, 10, 10]


def test_retry_after_is_a_lower_bound_but_capped_by_max_delay() -> None:
    policy = RetryPolicy(initial_delay=1, max_delay=30, jitter=False)
    assert backoff_delay(policy, 1, retry_after=7) == 7
    assert backoff_delay(policy, 1, retry_after=0.1) == 1
    assert backoff_delay(policy, 1, retry_after=3600) == 30


def test_should_retry_only_retryable_errors_within_the_attempt_budget() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert should_retry(policy, 1, True) and should_retry(policy, 2, True)
    assert not should_retry(policy, 3, True)
    assert not should_retry(policy, 1, False)

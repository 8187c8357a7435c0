"""The spike test's statistics: exact tails, false alarms on unchanged Poisson traffic at
or below alpha (within sampling error), and detection of a 5x burst."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.spikes import binomial_upper_tail, spike_test

ALPHA = 0.01
MIN_COUNT = 5
RECENT = 7
SAMPLES = 2000


def poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method, split into chunks so exp(-mean) never underflows."""
    count = 0
    while mean > 0:
        chunk = min(mean, 30.0)
        mean -= chunk
        limit, product = math.exp(-chunk), rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
    return count


def flagged(recent: int, baseline: int, exposure: int) -> bool:
    test = spike_test(recent, baseline, exposure, recent_days=RECENT)
    return recent >= MIN_COUNT and test.p_value < ALPHA


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [(0, 5, 0.3), (1, 1, 0.5), (3, 10, 0.1), (7, 10, 0.9), (11, 10, 0.5), (50, 200, 0.2)],
)
def test_binomial_tail_matches_the_definition(k: int, n: int, p: float) -> None:
    exact = sum(math.comb(n, x) * p**x * (1 - p) ** (n - x) for x in range(k, n + 1))
    assert binomial_upper_tail(k, n, p) == pytest.approx(exact, rel=1e-9, abs=1e-15)


@settings(max_examples=12, deadline=None)
@given(
    rate=st.floats(min_value=0.05, max_value=8.0),
    exposure=st.sampled_from([14, 28, 56]),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_false_alarms_on_unchanged_traffic_stay_at_or_below_alpha(
    rate: float, exposure: int, seed: int
) -> None:
    rng = random.Random(seed)
    alarms = sum(
        flagged(poisson(rng, rate * RECENT), poisson(rng, rate * exposure), exposure)
        for _ in range(SAMPLES)
    )
    # the conditional test is exact (conservative, counts being discrete): allow 4 sigma
    # of sampling error above alpha
    bound = ALPHA + 4 * math.sqrt(ALPHA * (1 - ALPHA) / SAMPLES)
    assert alarms / SAMPLES <= bound


@settings(max_examples=8, deadline=None)
@given(
    rate=st.floats(min_value=0.5, max_value=8.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_fivefold_burst_is_detected(rate: float, seed: int) -> None:
    rng = random.Random(seed)
    detected = sum(
        flagged(poisson(rng, 5 * rate * RECENT), poisson(rng, rate * 56), 56)
        for _ in range(SAMPLES)
    )
    # measured: 97.6 % at 0.5 questions a day, 100 % from 1 a day on
    assert detected / SAMPLES >= 0.95


def test_an_empty_baseline_needs_more_questions_the_shorter_the_history() -> None:
    # no basic question in the baseline at all: 5 in a week is significant after 8 weeks
    # (p = (7/63)^5) and after 2 weeks (p = (1/3)^5 = 0.004)
    assert spike_test(5, 0, 56, recent_days=7).p_value == pytest.approx((7 / 63) ** 5)
    assert spike_test(5, 0, 14, recent_days=7).p_value == pytest.approx((1 / 3) ** 5)
    assert spike_test(5, 0, 14, recent_days=7).expected_count == 0.0
    assert spike_test(3, 56, 56, recent_days=7).expected_count == pytest.approx(7.0)

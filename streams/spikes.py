"""The basic-question spike test: the exact conditional test of two Poisson rates.

A customer asked k basic questions in the recent window (`recent_days` r, default 7)
and b in its baseline (the `baseline_days` before it, default 56, shortened to the days
the customer has been known: its *exposure* e). If the customer's rate did not change,
then given the total n = k + b, the recent count is binomial:

    k | n  ~  Binomial(n, π),   π = r / (r + e)

and the p-value is the upper tail P(K ≥ k) (Przyborowski and Wilenski's conditional
test). It does not depend on the unknown rate, so it is exact for any rate and any
baseline length: a customer with no change is flagged with probability at most alpha
(less, since counts are discrete; property-tested). A spike is p < alpha with
k ≥ min_count, once the customer has `min_baseline_days` of baseline.
`baseline_per_day` = b / e and `expected_count` = b / e · r.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpikeTest:
    recent_count: int
    baseline_count: int
    exposure_days: int
    baseline_per_day: float  # b / e (0 without exposure)
    expected_count: float  # baseline_per_day x recent days
    p_value: float


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space from the smaller side."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    lgn = math.lgamma(n + 1)

    def term(x: int) -> float:
        return math.exp(
            lgn - math.lgamma(x + 1) - math.lgamma(n - x + 1) + x * log_p + (n - x) * log_q
        )

    if k > n * p:  # the tail is the small side: sum it directly
        return min(1.0, sum(term(x) for x in range(k, n + 1)))
    return min(1.0, max(0.0, 1.0 - sum(term(x) for x in range(k))))


def spike_test(
    recent_count: int, baseline_count: int, exposure_days: int, *, recent_days: int
) -> SpikeTest:
    rate = baseline_count / exposure_days if exposure_days > 0 else 0.0
    share = recent_days / (recent_days + exposure_days)
    return SpikeTest(
        recent_count=recent_count,
        baseline_count=baseline_count,
        exposure_days=exposure_days,
        baseline_per_day=rate,
        expected_count=rate * recent_days,
        p_value=binomial_upper_tail(recent_count, recent_count + baseline_count, share),
    )

"""The population summary: accuracy, exact and order-independent merging, statistics."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.sketch import BucketMapping, ScoreSummary

ALPHA = 0.01
scores = st.floats(min_value=-1e6, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(scores.filter(lambda v: abs(v) >= 1e-9))
def test_a_bucket_represents_its_values_within_alpha(value: float) -> None:
    mapping = BucketMapping(ALPHA)
    representative = mapping.value(mapping.key(value))
    assert abs(representative - value) <= ALPHA * abs(value) * (1 + 1e-9)


@given(st.lists(scores, min_size=2, max_size=60, unique=True))
def test_keys_are_ordered_like_values(values: list[float]) -> None:
    mapping = BucketMapping(ALPHA)
    ordered = sorted(values)
    keys = [mapping.key(v) for v in ordered]
    assert keys == sorted(keys)


def summary_of(values: list[float]) -> ScoreSummary:
    summary = ScoreSummary(ALPHA)
    for value in values:
        summary.add(value)
    return summary


@settings(max_examples=100)
@given(values=st.lists(scores, max_size=80), cut=st.data())
def test_merging_is_order_independent_and_exact(values: list[float], cut: st.DataObject) -> None:
    parts = cut.draw(st.lists(st.integers(0, 3), min_size=len(values), max_size=len(values)))
    groups: list[list[float]] = [[], [], [], []]
    for value, part in zip(values, parts, strict=True):
        groups[part].append(value)
    order = cut.draw(st.permutations(range(4)))
    merged = ScoreSummary.merged(ALPHA, (summary_of(groups[i]) for i in order))
    assert merged.to_json() == summary_of(values).to_json()


@settings(max_examples=100)
@given(values=st.lists(scores, min_size=1, max_size=300), q=st.floats(min_value=0.0, max_value=1.0))
def test_quantiles_are_within_alpha_of_the_exact_ones(values: list[float], q: float) -> None:
    estimate = summary_of(values).ranks().quantile(q)
    ordered = sorted(values)
    exact = ordered[min(max(math.ceil(q * len(ordered)), 1), len(ordered)) - 1]
    assert estimate is not None
    assert abs(estimate - exact) <= ALPHA * abs(exact) + 1e-9


@settings(max_examples=100)
@given(
    st.lists(st.floats(min_value=-1e4, max_value=1e4, allow_nan=False), min_size=2, max_size=100)
)
def test_mean_and_stddev(values: list[float]) -> None:
    summary = summary_of(values)
    assert summary.mean() == pytest.approx(statistics.fmean(values), abs=1e-6)
    assert summary.stddev() == pytest.approx(statistics.pstdev(values), abs=1e-3, rel=1e-6)


def test_percentiles_of_a_known_population() -> None:
    summary = summary_of([float(i) for i in range(1, 101)])  # 1..100
    ranks = summary.ranks()
    assert ranks.percentile(95.0) == pytest.approx(94.5, abs=1.0)
    assert ranks.percentile(1000.0) == 100.0
    assert ranks.percentile(-5.0) == 0.0
    assert ranks.quantile(0.5) == pytest.approx(50, rel=ALPHA)


@given(st.lists(scores, max_size=50), st.lists(scores, max_size=50))
def test_remove_undoes_add(keep: list[float], extra: list[float]) -> None:
    summary = summary_of(keep)
    for value in extra:
        summary.add(value)
    for value in extra:
        summary.remove(value)
    assert summary.to_json() == summary_of(keep).to_json()


@given(st.lists(scores, max_size=50))
def test_serialisation_round_trip(values: list[float]) -> None:
    summary = summary_of(values)
    again = ScoreSummary.from_json(summary.to_json())
    assert again.to_json() == summary.to_json()
    assert again.stddev() == summary.stddev()


def test_zero_and_negative_scores() -> None:
    summary = summary_of([-3.0, 0.0, 0.0, 2.0])
    ranks = summary.ranks()
    assert ranks.quantile(0.25) == pytest.approx(-3.0, rel=ALPHA)
    assert ranks.quantile(0.5) == 0.0
    assert ranks.percentile(0.0) == 50.0  # two of four are below or at zero: midrank


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200))
def test_remembered_bucket_percentiles_equal_computed_ones(values: list[float]) -> None:
    summary = ScoreSummary(0.01)
    for value in values:
        summary.add(value)
    ranks = summary.ranks()
    mapping = ranks.mapping
    keys = [*summary.counts, mapping.successor(max(summary.counts))]
    for key in keys:
        # every value of the bucket (its lowest one here) has the bucket's percentile,
        # even in the bucket just above zero, whose representative lies below it
        expected = ranks.percentile(math.nextafter(mapping.largest_below(key), math.inf))
        assert ranks.bucket_percentile(key) == expected
        assert ranks.bucket_percentile(key) == expected  # the remembered answer
    for value in values:
        assert ranks.bucket_percentile(mapping.key(value)) == ranks.percentile(value)


def test_an_empty_population_ranks_every_value_and_bucket_at_zero() -> None:
    ranks = ScoreSummary(ALPHA).ranks()
    assert ranks.percentile(5.0) == 0.0
    assert ranks.bucket_percentile(ranks.mapping.key(5.0)) == 0.0
    assert ranks.reach_threshold(50.0) is None

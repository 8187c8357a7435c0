"""The hot-path metrics expose exactly what prometheus-client's own would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from agents.fastmetrics import FastCollector, FastCounter, FastHistogram

BUCKETS = (0.1, 0.5, 1.0, 5.0, 60.0)


@settings(max_examples=100)
@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=50))
def test_histogram_matches_the_client_library(values: list[float]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = FastHistogram("lag_seconds", "doc", BUCKETS)
    ours.register(FastCollector([fast]))
    reference = Histogram("lag_seconds", "doc", buckets=BUCKETS, registry=theirs)
    for value in values:
        fast.observe(value)
        reference.observe(value)
    for sample in ("lag_seconds_count", "lag_seconds_sum"):
        assert ours.get_sample_value(sample) == theirs.get_sample_value(sample)
    for bound in ("0.1", "0.5", "1.0", "5.0", "60.0", "+Inf"):
        labels = {"le": bound}
        assert ours.get_sample_value("lag_seconds_bucket", labels) == theirs.get_sample_value(
            "lag_seconds_bucket", labels
        )


def test_counter_matches_the_client_library() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = FastCounter("events", "doc", ["topic"])
    ours.register(FastCollector([fast]))
    reference = Counter("events", "doc", ["topic"], registry=theirs)
    for topic, amount in [("calls", 1), ("orders", 2), ("calls", 3)]:
        fast.labels(topic=topic).inc(amount)
        reference.labels(topic=topic).inc(amount)
    ours_text = generate_latest(ours).decode()
    theirs_text = "\n".join(
        line for line in generate_latest(theirs).decode().splitlines() if "_created" not in line
    )
    assert ours_text.strip() == theirs_text.strip()

"""Consumer lag: highwater minus the position after the last processed message, for the
input partitions a worker owns (the real worker is measured in
tests/integration/test_prometheus.py; here, the arithmetic on a stand-in consumer)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from agents.faust_port.consumer import input_lag
from agents.metrics import CONSUMER_LAG, Metrics


class StandIn:
    """The parts of a Faust consumer that input_lag reads, with Faust's own containers."""

    def __init__(self, highwaters: dict[TP, int | None], *, started: bool = True) -> None:
        self._highwaters = highwaters
        self._started = started
        self._acked: defaultdict[TP, list[int]] = defaultdict(list)
        self._committed_offset: defaultdict[TP, int | None] = defaultdict(lambda: None)

    def assignment(self) -> set[TP]:
        if not self._started:
            raise ConsumerNotStarted("Consumer thread not yet started")
        return set(self._highwaters)

    def highwater(self, tp: TP) -> int | None:
        return self._highwaters[tp]


CALLS_0, CALLS_1, ORDERS_0 = TP("calls", 0), TP("calls", 1), TP("orders", 0)
CHANGELOG = TP("vipstream-customer_state-changelog", 0)


def lags(
    consumer: Any, processed: dict[tuple[str, int], int] | None = None
) -> dict[tuple[str, int], int]:
    return {(t, p): lag for t, p, lag in input_lag(consumer, {"calls", "orders"}, processed)}


def test_position_is_after_the_last_acknowledged_message() -> None:
    consumer = StandIn({CALLS_0: 100, CALLS_1: 50, ORDERS_0: 10})
    consumer._committed_offset[CALLS_0] = 40  # committed earlier...
    consumer._acked[CALLS_0] += [40, 41, 42]  # ...and processed since: next is 43
    consumer._committed_offset[CALLS_1] = 50  # all processed and committed
    # ORDERS_0: a new group, nothing processed or committed: all of it is lag
    assert lags(consumer) == {("calls", 0): 57, ("calls", 1): 0, ("orders", 0): 10}


def test_a_commit_in_flight_does_not_look_like_lag() -> None:
    consumer = StandIn({CALLS_0: 100})
    consumer._committed_offset[CALLS_0] = 40
    consumer._acked[CALLS_0] += list(range(40, 100))
    processed = {("calls", 0): 100}  # the engine noted each applied message
    assert lags(consumer, processed) == {("calls", 0): 0}
    consumer._acked[CALLS_0].clear()  # the commit took the acked offsets; the broker
    assert lags(consumer, processed) == {("calls", 0): 0}  # has not answered yet
    consumer._committed_offset[CALLS_0] = 100
    assert lags(consumer, processed) == {("calls", 0): 0}


def test_the_committed_offset_wins_over_an_old_processed_offset() -> None:
    consumer = StandIn({CALLS_0: 100})
    # processed up to 30 when this worker last held the partition; another worker
    # processed and committed up to 90 meanwhile
    consumer._committed_offset[CALLS_0] = 90
    assert lags(consumer, {("calls", 0): 30}) == {("calls", 0): 10}


def test_only_owned_input_partitions_with_a_known_highwater() -> None:
    consumer = StandIn({CALLS_0: None, CHANGELOG: 500, ORDERS_0: 3})
    assert lags(consumer) == {("orders", 0): 3}
    assert CALLS_0 not in consumer._acked  # reading does not create entries
    assert CALLS_0 not in consumer._committed_offset


def test_a_consumer_not_started_has_no_lag() -> None:
    assert lags(StandIn({CALLS_0: 10}, started=False)) == {}


def test_lag_is_never_negative() -> None:
    consumer = StandIn({CALLS_0: 5})  # a highwater from an older fetch
    consumer._acked[CALLS_0] += [5, 6]
    assert lags(consumer) == {("calls", 0): 0}


def test_exposed_as_a_gauge_per_topic_and_partition() -> None:
    metrics = Metrics()
    assert f"# TYPE {CONSUMER_LAG} gauge" in metrics.render().decode()  # before any source
    consumer = StandIn({CALLS_1: 9, ORDERS_0: 4})
    metrics.consumer_lag.watch(lambda: input_lag(consumer, {"calls", "orders"}))
    registry = metrics.registry
    assert registry.get_sample_value(CONSUMER_LAG, {"topic": "calls", "partition": "1"}) == 9
    assert registry.get_sample_value(CONSUMER_LAG, {"topic": "orders", "partition": "0"}) == 4
    consumer._committed_offset[ORDERS_0] = 4  # computed again at every scrape
    assert registry.get_sample_value(CONSUMER_LAG, {"topic": "orders", "partition": "0"}) == 0

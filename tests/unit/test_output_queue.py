"""The output queue's exactly-once side (agents/kafka/producing.py OutputQueue): what a
rebalance revokes is dropped with the states it changed, the rest waits for the next
commit in order; at least once nothing is dropped (it is sent as it comes)."""

from __future__ import annotations

from typing import Any, cast

from agents.kafka.producing import BatchProducer, OutputQueue


def queue_of(*, transactional: bool) -> OutputQueue:
    producer = cast(BatchProducer, object())  # never used: nothing is sent here
    return OutputQueue(producer, linger_seconds=0.0, transactional=transactional)


def test_records_of_revoked_partitions_are_dropped_the_others_kept_in_order() -> None:
    queue = queue_of(transactional=True)
    records: list[tuple[str, int, Any]] = [
        ("ticket-priorities", 0, b"a"),
        ("ticket-priorities", 1, b"b"),
        ("value-summaries", 0, b"summary of 2"),  # owned by input partition 2
        ("tier-changes", 0, b"c"),
        ("customer-tiers", 1, None),  # a tombstone
    ]
    owners = [None, None, 2, None, None]
    for (topic, partition, value), owner in zip(records, owners, strict=True):
        queue.queue(topic, partition, b"k", value, owner=owner)
    assert queue.drop({1, 3}) == 2
    taken, _ = queue.take_records()
    assert taken == [
        (0, ("ticket-priorities", 0, b"k", b"a")),
        (2, ("value-summaries", 0, b"k", b"summary of 2")),
        (0, ("tier-changes", 0, b"k", b"c")),
    ]
    assert queue.drop({0}) == 0  # nothing left to drop


def test_at_least_once_nothing_is_dropped() -> None:
    queue = queue_of(transactional=False)
    queue.queue("tier-changes", 1, b"k", b"c")
    assert queue.drop({1}) == 0
    assert queue.pending == [("tier-changes", 1, b"k", b"c")]

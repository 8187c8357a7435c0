"""agents/kafka/bulk_read.py on a real broker: every record of each span in offset order,
nothing past a span's end, tombstones as they are, what a read_committed reader may see
only, and a read cut short by time saying how far it got."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from agents.kafka.bulk_read import Key, ReadResult, Span, read_spans
from tests.integration.conftest import RunningBroker
from tests.integration.test_highwater import create_topic

pytestmark = pytest.mark.integration


def read(
    broker: RunningBroker, spans: dict[Key, Span], *, seconds: float = 20.0, committed: bool = False
) -> tuple[ReadResult, dict[Key, list[tuple[int, bytes | None, bytes | None]]]]:
    got: dict[Key, list[tuple[int, bytes | None, bytes | None]]] = {}

    def apply(key: Key, records: list[Any]) -> None:
        got.setdefault(key, []).extend((r.offset, r.key, r.value) for r in records)

    result = asyncio.run(
        read_spans(
            [broker.bootstrap],
            spans,
            apply,
            max_message_bytes=1024 * 1024,
            read_committed=committed,
            seconds=seconds,
            request_timeout_seconds=10.0,
        )
    )
    return result, got


@pytest.mark.both_brokers
def test_spans_are_read_in_order_up_to_their_ends(broker: RunningBroker) -> None:
    topic = f"bulk-{id(broker)}"

    async def fill() -> None:
        await create_topic(broker, topic, 3)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20)
        await producer.start()
        try:
            sends = [
                await producer.send(topic, b"v%d" % i, key=b"k%d" % (i % 7), partition=0)
                for i in range(500)
            ]
            sends += [await producer.send(topic, None, key=b"gone", partition=1)]
            sends += [await producer.send(topic, b"x", key=b"k", partition=1) for _ in range(9)]
            await asyncio.gather(*sends)
        finally:
            await producer.stop()

    asyncio.run(fill())
    spans = {
        (topic, 0): Span(None, 500),  # all of it
        (topic, 1): Span(0, 4),  # the tombstone and three more; six lie past the end
        (topic, 2): Span(None, 0),  # empty: nothing to read
    }
    result, got = read(broker, spans)
    assert result.error is None
    assert [o for o, _, _ in got[(topic, 0)]] == list(range(500))
    assert got[(topic, 0)][7] == (7, b"k0", b"v7")
    assert got[(topic, 1)] == [
        (0, b"gone", None),
        (1, b"k", b"x"),
        (2, b"k", b"x"),
        (3, b"k", b"x"),
    ]
    assert (topic, 2) not in got
    assert result.finished == {(topic, 0), (topic, 1)}
    assert result.through == {(topic, 0): 499, (topic, 1): 3}
    assert result.records == 504

    # from the middle, and with no time at all: nothing read, nothing claimed
    result, got = read(broker, {(topic, 0): Span(250, 500)})
    assert [o for o, _, _ in got[(topic, 0)]] == list(range(250, 500))
    result, got = read(broker, {(topic, 0): Span(None, 500)}, seconds=0)
    assert (result.records, result.through, result.finished, got) == (0, {}, set(), {})


def test_a_read_committed_span_skips_aborted_records_and_ends_past_the_markers(
    broker: RunningBroker,
) -> None:
    """A transactional changelog (exactly once): the span ends at the offset after the last
    committed record, the read finishes there although markers follow, and records of an
    aborted transaction are never handed over."""
    topic = f"bulk-tx-{id(broker)}"

    async def fill() -> None:
        await create_topic(broker, topic, 1)
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap, transactional_id=f"{topic}-writer"
        )
        await producer.start()
        try:
            for kept in (True, False, True):
                async with producer.transaction() if kept else _aborting(producer):
                    for i in range(3):
                        await producer.send_and_wait(
                            topic, b"kept" if kept else b"aborted", key=b"k%d" % i, partition=0
                        )
        finally:
            await producer.stop()

    asyncio.run(fill())
    # offsets: 0-2 committed, 3 marker, 4-6 aborted, 7 marker, 8-10 committed, 11 marker
    result, got = read(broker, {(topic, 0): Span(None, 11)}, committed=True)
    assert result.error is None
    assert [(o, v) for o, _, v in got[(topic, 0)]] == [
        (0, b"kept"),
        (1, b"kept"),
        (2, b"kept"),
        (8, b"kept"),
        (9, b"kept"),
        (10, b"kept"),
    ]
    assert result.finished == {(topic, 0)}
    assert result.through == {(topic, 0): 10}


class _aborting:  # used like producer.transaction()
    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def __aenter__(self) -> None:
        await self._producer.begin_transaction()

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.abort_transaction()

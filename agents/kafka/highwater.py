"""Log-end offsets that are right on every Kafka-compatible broker.

Faust's table recovery reads a changelog partition up to its log end, which it asks for
with ListOffsets(latest). The embedded broker (Tansu 0.6) answers that with the base
offset of the partition's last record *batch* plus one, not the offset after its last
record: after a batch of five, four records short. Recovery then stops early, and a
RocksDB store whose recorded offset lies past that answer fails Faust's consistency
check. The high watermark in a fetch response is right on that broker too, and on Apache
Kafka both answers agree (with acks=all the log end a reader may see is the high
watermark), so recovery uses the larger of the two.

A partition whose fetch does not answer in time is an error, never a silent fallback to
the listed answer: reading a changelog short of its end would restore customers without
their latest state while their events' offsets are committed, and nothing would ever
apply those events again. Faust gives up on the whole answer after
`broker_request_timeout` and then recovers up to stale offsets without a word, so the
wait here must end sooner (agents/worker/app.py passes a deadline below that timeout); the
error crashes the worker, whose restart tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.kafka.security import Client, options_of

Highwaters = Callable[..., Awaitable[Mapping[Any, int]]]


class HighwaterUnknown(RuntimeError):
    """A partition's fetch did not report its high watermark in time."""


async def fetched_highwaters(
    client: Client, listed: Mapping[Any, int], *, wait_seconds: float = 10.0
) -> dict[Any, int]:
    """For each partition (a (topic, partition) tuple) with a listed end offset above
    zero, the high watermark a fetch of its last listed record reports. HighwaterUnknown
    when a partition has not answered within `wait_seconds`."""
    wanted = {tp: TopicPartition(tp[0], tp[1]) for tp, end in listed.items() if end}
    if not wanted:
        return {}
    consumer = AIOKafkaConsumer(**options_of(client), enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(wanted.values()))
        for tp, kafka_tp in wanted.items():
            consumer.seek(kafka_tp, listed[tp] - 1)
        found: dict[Any, int] = {}
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while len(found) < len(wanted) and asyncio.get_running_loop().time() < deadline:
            await consumer.getmany(timeout_ms=200)
            for tp, kafka_tp in wanted.items():
                highwater = consumer.highwater(kafka_tp)
                if highwater is not None:
                    found[tp] = highwater
                    consumer.pause(kafka_tp)
        missing = sorted(f"{tp[0]}[{tp[1]}]" for tp in wanted.keys() - found.keys())
        if missing:
            raise HighwaterUnknown(
                f"no fetch answered within {wait_seconds:g}s with the log end of "
                f"{', '.join(missing)}: not reading changelogs short of their end"
            )
        return found
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


def exact_highwaters(
    highwaters: Highwaters, client: Client, *, wait_seconds: float = 10.0
) -> Highwaters:
    """Wrap a Faust consumer's `highwaters` (ListOffsets) so that no answer is below the
    fetched high watermark (HighwaterUnknown when a fetch does not answer in time)."""

    async def exact(*partitions: Any) -> Mapping[Any, int]:
        listed = dict(await highwaters(*partitions))
        fetched = await fetched_highwaters(client, listed, wait_seconds=wait_seconds)
        return {tp: max(end, fetched.get(tp, end)) for tp, end in listed.items()}

    return exact


async def last_committed_ends(
    client: Client, listed: Mapping[Any, int], *, wait_seconds: float = 10.0
) -> dict[Any, int]:
    """Exactly once: for each partition ((topic, partition) tuple) whose last stable
    offset `listed` is above zero, the offset after its last *committed record*.

    A transactional log ends in control records (each transaction's commit or abort
    marker) and may hold aborted records: a `read_committed` reader never sees either,
    so one waiting to reach the last stable offset (what Faust's recovery does with
    ListOffsets) waits for a record that never comes. This is where such a reader's
    last record is: read backwards in growing windows until a committed record shows
    (0 when the partition holds none). HighwaterUnknown when the reads do not finish
    within `wait_seconds`."""
    wanted = {tp: TopicPartition(tp[0], tp[1]) for tp, end in listed.items() if end}
    ends = dict.fromkeys(listed, 0)
    if not wanted:
        return ends
    consumer = AIOKafkaConsumer(
        **options_of(client), enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        async with asyncio.timeout(wait_seconds):
            for tp, kafka_tp in wanted.items():
                ends[tp] = await _last_record_end(consumer, kafka_tp, listed[tp])
    except TimeoutError as exc:
        raise HighwaterUnknown(
            f"reading the committed ends of {len(wanted)} partitions took over "
            f"{wait_seconds:g}s: not reading changelogs short of their end"
        ) from exc
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    return ends


async def _last_record_end(consumer: AIOKafkaConsumer, tp: TopicPartition, stable: int) -> int:
    consumer.assign([tp])
    end, window = stable, 64
    while end > 0:
        start = max(0, end - window)
        consumer.seek(tp, start)
        last = -1
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=200)
            for record in batch.get(tp, []):
                if record.offset < end:
                    last = max(last, record.offset)
        if last >= 0:
            return last + 1
        end, window = start, window * 8
    return 0


def committed_highwaters(
    highwaters: Highwaters, client: Client, *, wait_seconds: float = 10.0
) -> Highwaters:
    """Wrap a `read_committed` Faust consumer's `highwaters` (its last stable offsets) to
    answer the offset after each partition's last committed record instead."""

    async def committed(*partitions: Any) -> Mapping[Any, int]:
        listed = dict(await highwaters(*partitions))
        return await last_committed_ends(client, listed, wait_seconds=wait_seconds)

    return committed

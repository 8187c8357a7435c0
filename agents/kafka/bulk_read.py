"""Reading several partitions up to given offsets, as fast as one consumer can.

A consumer without a group, every partition assigned at once, large fetches, the
records handed over a fetch's worth at a time: restoring a changelog this way costs a
few microseconds a record, where a per-message pipeline costs a hundred
(agents/faust_port/restore.py uses it for the state table).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.kafka.security import Client, options_of

Key = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True)
class Span:
    """Read from `start` (None: the partition's first offset) to just before `end`."""

    start: int | None
    end: int


@dataclass
class ReadResult:
    """How far each partition is read: `through[key]` is the last offset whose record (if
    any) was handed over, so the partition holds nothing unread up to it; partitions not
    read at all are absent. `finished` are those read to their end."""

    through: dict[Key, int] = field(default_factory=dict)
    finished: set[Key] = field(default_factory=set)
    records: int = 0
    error: BaseException | None = None


async def read_spans(
    client: Client,
    spans: Mapping[Key, Span],
    apply: Callable[[Key, list[Any]], None],
    *,
    max_message_bytes: int,
    read_committed: bool,
    seconds: float,
    request_timeout_seconds: float,
) -> ReadResult:
    """Hand `apply` every record of every span (aiokafka ConsumerRecords, in offset order
    within a partition), stopping after `seconds` with what is read so far. A broker error
    ends the read too, as `result.error`: what was handed over stays handed over, and the
    caller reads the rest another way. Cancellation is passed on."""
    result = ReadResult()
    wanted = {k: span for k, span in spans.items() if (span.start or 0) < span.end}
    if not wanted:
        return result
    consumer = AIOKafkaConsumer(
        **options_of(client),
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # a start already compacted away: what remains
        isolation_level="read_committed" if read_committed else "read_uncommitted",
        max_partition_fetch_bytes=max(8 * 1024 * 1024, max_message_bytes),
        fetch_max_bytes=max(64 * 1024 * 1024, max_message_bytes),
        fetch_max_wait_ms=100,
        request_timeout_ms=int(request_timeout_seconds * 1000),
    )
    try:
        await consumer.start()
        await _read(consumer, wanted, apply, result, asyncio.get_running_loop().time() + seconds)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        result.error = exc
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
    return result


async def _read(
    consumer: AIOKafkaConsumer,
    spans: Mapping[Key, Span],
    apply: Callable[[Key, list[Any]], None],
    result: ReadResult,
    deadline: float,
) -> None:
    tps = {key: TopicPartition(*key) for key in spans}
    consumer.assign(list(tps.values()))
    for key, tp in tps.items():
        start = spans[key].start
        if start is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, start)
    loop = asyncio.get_running_loop()
    reading = set(tps)
    while reading and loop.time() < deadline:
        fetched = await consumer.getmany(*(tps[key] for key in reading), timeout_ms=200)
        for tp, batch in fetched.items():
            key = (tp.topic, tp.partition)
            end = spans[key].end
            records = [r for r in batch if r.offset < end] if batch[-1].offset >= end else batch
            if records:
                apply(key, records)
                result.records += len(records)
                result.through[key] = records[-1].offset
        for key in list(reading):
            if await consumer.position(tps[key]) >= spans[key].end:
                # what lies between the last record and the end holds no record this
                # reader may see (control records, aborted or compacted ones)
                result.through[key] = spans[key].end - 1
                result.finished.add(key)
                reading.discard(key)
                consumer.pause(tps[key])

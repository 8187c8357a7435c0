"""Reading a range of an input partition straight from the broker, outside the group.

The agent uses it to fill a hole in its input (agents/engine/frontier.py): offsets Faust's
stream dropped without applying them. A consumer without a group, created on first use
and kept: holes are rare, and each read seeks afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from agents.engine.frontier import FetchedSpan
from agents.kafka.security import Client, options_of

log = logging.getLogger(__name__)


class PartitionReader:
    """Reads [start, end) of one partition; retries until the broker answers."""

    def __init__(
        self,
        client: Client,
        *,
        group_id: str,
        max_message_bytes: int,
        request_timeout_seconds: float,
        retry_seconds: float = 1.0,
    ) -> None:
        self._client = options_of(client)
        self._max_message_bytes = max_message_bytes
        self._request_timeout = request_timeout_seconds
        self._retry = retry_seconds
        self._group_id = group_id
        self._consumer: AIOKafkaConsumer | None = None
        self._group_reader: AIOKafkaConsumer | None = None
        #: what the last read of each partition found, for the holes that follow
        self.span = FetchedSpan()

    async def read(
        self, topic: str, partition: int, start: int | None, end: int
    ) -> AsyncIterator[list[Any]]:
        """Batches of the records at offsets start..end-1 (aiokafka ConsumerRecords, in
        offset order). `start` None: from the partition's first offset. Offsets that hold
        no record are simply absent; the read ends at the first record at `end` or beyond
        (which exists: its message revealed the hole), so it always terminates."""
        tp = TopicPartition(topic, partition)
        position = start
        while True:
            try:
                async for batch in self._read_once(tp, position, end):
                    if batch:
                        position = batch[-1].offset + 1
                        yield batch
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker may be away: the hole must still be filled
                log.warning(
                    "re-reading %s[%d] from %s to %d failed (%r); retrying",
                    topic,
                    partition,
                    "its start" if position is None else position,
                    end,
                    exc,
                    extra={"event": "input_refetch_failed"},
                )
                await self.close()
                await asyncio.sleep(self._retry)

    async def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset of a partition, asked afresh (None: none), by a
        consumer that names the group but never joins it; None if the broker does not
        answer."""
        try:
            if self._group_reader is None:
                reader = AIOKafkaConsumer(
                    **self._client,
                    group_id=self._group_id,
                    enable_auto_commit=False,
                    request_timeout_ms=int(self._request_timeout * 1000),
                )
                await reader.start()
                self._group_reader = reader
            offset: int | None = await self._group_reader.committed(
                TopicPartition(topic, partition)
            )
            return offset
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "asking for the committed offset of %s[%d] failed: %r", topic, partition, exc
            )
            return None

    async def _read_once(
        self, tp: TopicPartition, start: int | None, end: int
    ) -> AsyncIterator[list[Any]]:
        consumer = await self._started()
        consumer.assign([tp])
        if start is None:
            await consumer.seek_to_beginning(tp)
        else:
            consumer.seek(tp, start)
        low = start
        while True:
            fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=2000)
            records = fetched.get(tp, [])
            if records:
                self.span.note(
                    tp, records[0].offset if low is None else low, [r.offset for r in records]
                )
                low = records[-1].offset + 1
            wanted = [r for r in records if r.offset < end and (start is None or r.offset >= start)]
            if wanted:
                yield wanted
            if (records and records[-1].offset >= end - 1) or await consumer.position(tp) >= end:
                return

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **self._client,
                enable_auto_commit=False,
                auto_offset_reset="earliest",  # a range already deleted: what remains of it
                max_partition_fetch_bytes=max(1024 * 1024, self._max_message_bytes),
                fetch_max_bytes=max(50 * 1024 * 1024, self._max_message_bytes),
                request_timeout_ms=int(self._request_timeout * 1000),
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        for consumer in (self._consumer, self._group_reader):
            if consumer is not None:
                with contextlib.suppress(Exception):
                    await consumer.stop()
        self._consumer = self._group_reader = None

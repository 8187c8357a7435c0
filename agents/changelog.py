"""Writing a commit's snapshot of customer states to the state table's changelog.

Sent one record message at a time through Faust's producer, every state costs a
`send_soon`, a buffer entry, a coroutine and a future (measured: about 150–350 µs of
Python each, most of the worker's producing time), and with many customers a commit
writes nearly one state per event. Here a snapshot becomes one record batch per
changelog partition (more only past `kafka.max_message_bytes`), built synchronously and
handed to a dedicated aiokafka producer: the cost per state is its append to the batch.

The records of a partition keep the snapshot's order (a partition's progress record
comes after its customers' states). The broker acknowledges a batch with the offset of
its first record; the batch's last record is at that offset plus the record count less
one, which `CustomerStore.confirm` records as the offset the local store is current
through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from agents.state_store import Snapshot

#: a record batch's header and one record's framing, in bytes (generously)
_BATCH_OVERHEAD = 128


class StateTooLargeError(RuntimeError):
    """A state larger than the largest message the producer may send."""


@dataclass(frozen=True, slots=True)
class Written:
    """A batch the broker acknowledged: its partition and the offset of its last record."""

    partition: int
    offset: int


class ChangelogWriter:
    """Sends snapshots to one changelog topic as record batches; acks=all."""

    def __init__(
        self,
        bootstrap: list[str],
        topic: str,
        *,
        max_message_bytes: int,
        request_timeout_seconds: float,
    ) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self._max_bytes = max_message_bytes
        self._timeout_ms = int(request_timeout_seconds * 1000)
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Lock | None = None

    async def write(self, snapshot: Snapshot) -> list[Awaitable[Written]]:
        """Queue the snapshot's records; one future per batch, resolving to `Written`."""
        if not snapshot.changes:
            return []
        producer = await self._started()
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for key, partition, value in snapshot.changes:
            by_partition.setdefault(partition, []).append((key, value))
        acks: list[Awaitable[Written]] = []
        for partition, records in sorted(by_partition.items()):
            batch, count = producer.create_batch(), 0
            for key, value in records:
                if len(key) + len(value) + _BATCH_OVERHEAD > self._max_bytes:
                    # start-up refuses caps that allow this (streams.codec.max_state_bytes)
                    raise StateTooLargeError(
                        f"a state of {len(value):,} bytes for key {key[:80]!r} exceeds "
                        f"kafka.max_message_bytes={self._max_bytes:,}"
                    )
                if batch.append(timestamp=None, key=key, value=value) is None:  # full
                    acks.append(await self._send(producer, batch, partition, count))
                    batch, count = producer.create_batch(), 0
                    batch.append(timestamp=None, key=key, value=value)  # fits an empty one
                count += 1
            acks.append(await self._send(producer, batch, partition, count))
        return acks

    async def _send(
        self, producer: AIOKafkaProducer, batch: Any, partition: int, count: int
    ) -> Awaitable[Written]:
        batch.close()
        sent = await producer.send_batch(batch, self.topic, partition=partition)
        return _last_offset(sent, partition, count)

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    acks="all",
                    max_batch_size=self._max_bytes,
                    max_request_size=self._max_bytes,
                    request_timeout_ms=self._timeout_ms,
                    enable_idempotence=False,
                )
                await producer.start()
                self._producer = producer
        return self._producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()


async def _last_offset(sent: Awaitable[Any], partition: int, count: int) -> Written:
    metadata = await sent
    return Written(partition, metadata.offset + count - 1)

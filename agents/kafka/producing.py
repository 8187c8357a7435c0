"""Producing the worker's own messages in record batches: output events and the state
changelog.

Sent one message at a time through Faust's producer, every message costs a `send_soon`,
a buffer entry, a coroutine and a future: about 150–350 µs of Python each, measured,
most of the worker's producing time. A worker produces about one output for every five
events, and with many customers nearly one state per event at each commit. Here both
are appended synchronously to aiokafka record batches, one per partition, on a
dedicated producer (acks=all): the cost per message is its append.

- Outputs (`OutputQueue`) go to the customer's own partition of the output topic (the
  partition its input came from, so outputs stay co-partitioned with the inputs); they
  are sent every `linger` seconds and whenever a commit needs them, in the order queued,
  per partition. With `kafka.exact_log_end` a send's last record per partition goes in
  a batch of its own: the embedded broker lists a partition's log end as its last
  batch's first offset + 1, and a reader that stops there would not see the rest of
  a multi-record last batch (issue 17: a closed day's outputs seemed to wait for the
  next close).
- State snapshots (`ChangelogWriter`) go to their changelog partitions; the broker
  acknowledges a batch with the offset of its first record, so its last record is at
  that offset plus the record count less one, which `CustomerStore.confirm` records as
  the offset the local store is current through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from agents.engine.store import Snapshot
from agents.kafka.security import Client, options_of

log = logging.getLogger(__name__)

#: a record batch's header and one record's framing, in bytes (generously)
_BATCH_OVERHEAD = 128
#: The largest batch of several records: within Apache Kafka's default max.message.bytes
#: (1,048,588), which applies to whole batches and which the output topics have. A
#: single record may still be larger (up to kafka.max_message_bytes: a customer's state,
#: on a changelog topic created to take it): it goes in a batch of its own.
BATCH_BYTES = 1_000_000

#: topic, partition, key, value (None: a tombstone)
Record = tuple[str, int, bytes | None, bytes | None]


class MessageTooLargeError(RuntimeError):
    """A message larger than the largest the producer may send."""


@dataclass(frozen=True, slots=True)
class Written:
    """A batch the broker acknowledged: its partition and the offset of its last record."""

    partition: int
    offset: int
    topic: str = ""


class BatchProducer:
    """A dedicated aiokafka producer, started on first use, fed whole record batches."""

    def __init__(
        self,
        client: Client,
        *,
        max_message_bytes: int,
        delivery_timeout_seconds: float,
        transactional_id: str | None = None,
    ) -> None:
        self._client = options_of(client)
        #: with one, sends happen inside transactions (agents/kafka/transactions.py) and
        #: starting the producer fences every earlier producer of the same id
        self.transactional_id = transactional_id
        self._max_bytes = max_message_bytes
        # aiokafka's request timeout is also how long a batch is retried (its time to
        # live): long, as Faust's producer has it, so a broker outage is ridden out
        self._timeout_ms = int(delivery_timeout_seconds * 1000)
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Lock | None = None

    async def send_all(
        self, records: Iterable[Record], *, last_alone: bool = False
    ) -> list[Awaitable[Written]]:
        """Queue (topic, partition, key, value) records, each destination's in the order
        given, as few batches as fit; one future per batch.

        `last_alone`: each destination's last record goes in a batch of its own, so the
        partition's last batch holds one record (see `KafkaSettings.exact_log_end`).
        Those batches are queued after every other, so that each waits for its
        partition's batch ahead of it in the same produce round."""
        by_destination: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        for topic, partition, key, value in records:
            by_destination.setdefault((topic, partition), []).append((key, value))
        acks: list[Awaitable[Written]] = []
        lasts: list[tuple[str, int, tuple[bytes | None, bytes | None]]] = []
        for (topic, partition), batch in by_destination.items():
            if last_alone and len(batch) > 1:
                lasts.append((topic, partition, batch.pop()))
            acks += await self.send(topic, partition, batch)
        for topic, partition, record in lasts:
            acks += await self.send(topic, partition, [record])
        return acks

    async def send(
        self, topic: str, partition: int, records: Iterable[tuple[bytes | None, bytes | None]]
    ) -> list[Awaitable[Written]]:
        """Queue the records for one partition, in order, as few batches as fit; one
        future per batch. Returns once they are queued, not delivered."""
        producer = await self._started()
        acks: list[Awaitable[Written]] = []
        batch, count = producer.create_batch(), 0
        for key, value in records:
            if len(key or b"") + len(value or b"") + _BATCH_OVERHEAD > self._max_bytes:
                # start-up refuses caps that allow this for a state (max_state_bytes)
                raise MessageTooLargeError(
                    f"a message of {len(value or b''):,} bytes for key {(key or b'')[:80]!r} on "
                    f"{topic} exceeds kafka.max_message_bytes={self._max_bytes:,}"
                )
            if batch.append(timestamp=None, key=key, value=value) is None:  # full
                acks.append(await self._send(producer, batch, topic, partition, count))
                batch, count = producer.create_batch(), 0
                batch.append(timestamp=None, key=key, value=value)  # fits an empty one
            count += 1
        if count:
            acks.append(await self._send(producer, batch, topic, partition, count))
        return acks

    @staticmethod
    async def _send(
        producer: AIOKafkaProducer, batch: Any, topic: str, partition: int, count: int
    ) -> Awaitable[Written]:
        batch.close()
        sent = await producer.send_batch(batch, topic, partition=partition)
        return _last_offset(sent, topic, partition, count)

    async def started(self) -> AIOKafkaProducer:
        """The aiokafka producer, started (for a transactional one: fencing done)."""
        return await self._started()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._producer is None:
                self._producer = await self._start_patiently()
        return self._producer

    async def _start_patiently(self) -> AIOKafkaProducer:
        """Start the producer, retrying while no broker can be reached (an outage, a
        network partition) for as long as a message would be retried: a worker whose
        first send falls into an outage waits for the broker instead of crashing."""
        deadline = asyncio.get_running_loop().time() + self._timeout_ms / 1000
        attempt = 0
        while True:
            producer = AIOKafkaProducer(
                **self._client,
                acks="all",
                max_batch_size=min(self._max_bytes, BATCH_BYTES),
                max_request_size=self._max_bytes,
                request_timeout_ms=self._timeout_ms,
                enable_idempotence=self.transactional_id is not None,
                transactional_id=self.transactional_id,
            )
            try:
                await producer.start()
                return producer
            except KafkaConnectionError as exc:
                with contextlib.suppress(Exception):
                    await producer.stop()
                attempt += 1
                if asyncio.get_running_loop().time() >= deadline:
                    raise
                log.warning(
                    "producer: no broker reachable (attempt %d: %s); retrying", attempt, exc
                )
                await asyncio.sleep(min(0.2 * 2**attempt, 5.0))

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()


async def _last_offset(sent: Awaitable[Any], topic: str, partition: int, count: int) -> Written:
    metadata = await sent
    return Written(partition, metadata.offset + count - 1, topic)


class ChangelogWriter:
    """Sends state snapshots to the table's changelog topic."""

    def __init__(self, producer: BatchProducer, topic: str) -> None:
        self._producer = producer
        self.topic = topic

    async def write(self, snapshot: Snapshot) -> list[Awaitable[Written]]:
        """Queue the snapshot's records; one future per batch, resolving to `Written`.
        A partition's records keep the snapshot's order (its progress record last)."""
        topic = self.topic
        return await self._producer.send_all(
            (topic, partition, key, value) for key, partition, value in snapshot.changes
        )


class OutputQueue:
    """Output events waiting to be produced, sent in the order queued, per partition."""

    def __init__(
        self,
        producer: BatchProducer,
        *,
        linger_seconds: float,
        exact_log_end: bool = False,
        transactional: bool = False,
    ) -> None:
        self._producer = producer
        self._linger = linger_seconds
        self._last_alone = exact_log_end
        #: exactly once: nothing is sent between commits; each commit takes the records
        #: (`take_records`) into its transactions
        self._transactional = transactional
        self._committed: asyncio.Future[None] | None = None
        self._pending: list[Record] = []
        #: exactly once: the input partition each pending record belongs to (whose
        #: transaction commits it): its own partition, or the one a summary is of
        self._owners: list[int] = []
        self._wake: asyncio.Event | None = None
        #: sends under way, each delivered or failed as a whole
        self._inflight: set[asyncio.Task[None]] = set()
        self._turn = 0  # chunks are sent in the order they were taken
        self._taken = 0
        self._ordered: asyncio.Condition | None = None

    def queue(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        *,
        owner: int | None = None,
    ) -> None:
        """`owner`: the input partition the record belongs to, where that is not the
        partition it goes to (a value summary: one partition for all)."""
        self._pending.append((topic, partition, key, value))
        if self._transactional:
            self._owners.append(partition if owner is None else owner)
        if self._wake is not None and not self._wake.is_set():
            self._wake.set()

    @property
    def flushing(self) -> bool:
        """Whether `flush_forever` runs (it does in a worker, not in an unstarted app)."""
        return self._wake is not None

    @property
    def pending(self) -> list[Record]:
        """Queued and not yet taken for sending (oldest first)."""
        return self._pending

    def take(self) -> list[Awaitable[None]]:
        """For the commit barrier, synchronously: awaitables that complete once every
        output queued so far is delivered (and fail if one is not).

        What is pending is sent by a task of its own, whatever the caller does next: a
        send taken as a bare coroutine would hold its turn until awaited, so a commit
        abandoned before awaiting it (cancelled, or failed earlier) would leave every
        later send waiting for that turn, and every later commit waiting for them.

        Exactly once: one awaitable, done when the next commit has committed them."""
        if self._transactional:
            if self._committed is None:
                self._committed = asyncio.get_running_loop().create_future()
            return [self._committed]
        self._send_pending()
        return list(self._inflight)

    def take_records(self) -> tuple[list[tuple[int, Record]], asyncio.Future[None] | None]:
        """Exactly once, for the commit barrier: every record queued so far with the
        input partition it belongs to, and the future `take()` handed out for them,
        which the barrier settles once they are committed (or not)."""
        records, self._pending = self._pending, []
        owners, self._owners = self._owners, []
        committed, self._committed = self._committed, None
        return list(zip(owners, records, strict=True)), committed

    def drop(self, partitions: set[int]) -> int:
        """Exactly once: forget the records queued for these input partitions (revoked:
        their uncommitted work is dropped with the states it changed, and their next
        owner, maybe this worker again, does it again from the last commit; sent later,
        they would be there twice). How many were dropped. At least once, records are
        sent as they come, and nothing is dropped."""
        if not self._transactional:
            return 0
        kept = [
            (o, r) for o, r in zip(self._owners, self._pending, strict=True) if o not in partitions
        ]
        dropped = len(self._pending) - len(kept)
        self._owners = [o for o, _ in kept]
        self._pending = [r for _, r in kept]
        return dropped

    async def flush_forever(self) -> None:
        """Send what is queued at most `linger` seconds after it was queued."""
        self._wake = asyncio.Event()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._transactional:
                continue  # sent by the commits, in their transactions
            if self._linger:
                await asyncio.sleep(self._linger)
            self._send_pending()

    def _send_pending(self) -> None:
        if self._pending:
            task = asyncio.create_task(self._send_in_turn(self._take_pending()))
            self._inflight.add(task)
            task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[None]) -> None:
        # a failed send stays in flight, so the next commit sees the failure
        if not task.cancelled() and task.exception() is None:
            self._inflight.discard(task)

    def _take_pending(self) -> tuple[int, list[Record]]:
        records, self._pending = self._pending, []
        turn, self._taken = self._taken, self._taken + 1
        return turn, records

    async def _send_in_turn(self, chunk: tuple[int, list[Record]]) -> None:
        turn, records = chunk
        if self._ordered is None:
            self._ordered = asyncio.Condition()
        acks: list[Awaitable[Written]] = []
        async with self._ordered:
            await self._ordered.wait_for(lambda: self._turn == turn)
            try:
                acks = await self._producer.send_all(records, last_alone=self._last_alone)
            finally:
                self._turn += 1
                self._ordered.notify_all()
        await asyncio.gather(*acks)

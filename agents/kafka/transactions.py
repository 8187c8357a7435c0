"""Exactly-once commits: one Kafka transaction per input partition (`processing_guarantee
= "exactly_once"`).

Everything a commit makes durable for an input partition p — the output events of p's
customers (outputs are co-partitioned with the inputs: agents/engine/outputs.py), the
state changelog records of p, and p's input offsets (`send_offsets_to_transaction`) —
goes into one transaction of a producer whose transactional id is `<app_id>-<p>`.

Why an id per input partition, and not per worker (the zombie-fencing argument):
aiokafka 0.14 sends TxnOffsetCommit v0, which carries no consumer-group generation, so
the broker cannot refuse a deposed worker's offsets by generation (KIP-447's scheme).
Kafka's original scheme needs no generation: the id names the partition, not the
worker. A worker that is assigned p starts a producer with p's id *before* it reads p's
changelog or its committed offsets (agents/faust_port/app.py hooks the assignment):
starting it (InitProducerId) bumps the id's epoch, which makes the coordinator abort
the previous owner's open transaction and refuse every later request of that owner
(ProducerFenced). So after the new owner has started, the old owner can neither commit
outputs, state nor offsets of p; everything it had not committed is aborted, and
consumers reading with `read_committed` (recovery included) never see it. The new owner
then reads the changelog and the committed offsets, both final.

A fenced owner learns it on its next commit: nothing of that commit becomes visible,
and the worker stops (agents/engine/barrier.Fenced crashes it), because what it holds in
memory is ahead of what is durable; restarted (by its supervisor), it rejoins the group
and recovers. Only a worker that was cut off from the group (a network partition, a
long pause) is ever fenced: a rebalance revokes and commits before it reassigns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import (
    IllegalOperation,
    KafkaError,
    ProducerFenced,
    TransactionalIdAuthorizationFailed,
)

from agents.engine.barrier import Fenced, PartitionCommit
from agents.faust_port.aiokafka_client import transactions_failed_by
from agents.kafka.producing import BatchProducer, Written
from agents.kafka.security import Client, options_of
from agents.metrics import Metrics

log = logging.getLogger(__name__)


class TransactionsUnsupported(RuntimeError):
    """The broker cannot run transactions (the embedded broker)."""


def transactional_id(app_id: str, partition: int) -> str:
    return f"{app_id}-{partition}"


class PartitionTransactions:
    """The transactional producers of the input partitions this worker owns."""

    def __init__(
        self,
        client: Client,
        *,
        app_id: str,
        group_id: str,
        max_message_bytes: int,
        delivery_timeout_seconds: float,
        metrics: Metrics,
    ) -> None:
        self._client = client
        self._app_id = app_id
        self._group_id = group_id
        self._max_bytes = max_message_bytes
        self._timeout = delivery_timeout_seconds
        self._metrics = metrics
        self._producers: dict[int, BatchProducer] = {}
        #: partitions whose producer was fenced: nothing of them commits until reassigned
        self._fenced: set[int] = set()
        self._committing: asyncio.Lock | None = None

    @property
    def owned(self) -> set[int]:
        return set(self._producers) - self._fenced

    def _producer(self, partition: int) -> BatchProducer:
        return BatchProducer(
            self._client,
            max_message_bytes=self._max_bytes,
            delivery_timeout_seconds=self._timeout,
            transactional_id=transactional_id(self._app_id, partition),
        )

    async def assign(self, partitions: Iterable[int]) -> None:
        """Own exactly these input partitions: a new producer for each (which fences
        whoever else used its id since), the old ones stopped. Call before reading
        anything of them. Every assignment starts afresh: between two assignments another
        worker may have owned a partition (a worker cut off from the group keeps its
        producers, which that owner fenced), and the group's eager protocol revokes and
        commits every partition before it assigns them again, so no transaction is open."""
        if self._committing is None:
            self._committing = asyncio.Lock()
        async with self._committing:  # not while a commit uses the producers
            await self._assign(sorted(set(partitions)))

    async def _assign(self, wanted: list[int]) -> None:
        for partition in list(self._producers):
            await self._drop(partition)
        started = time.perf_counter()
        for partition in wanted:
            self._producers[partition] = self._producer(partition)
        await asyncio.gather(*(self._producers[p].started() for p in wanted))
        if wanted:
            log.info(
                "transactional producers started (earlier owners fenced) for partitions %s "
                "in %.2fs",
                ", ".join(map(str, wanted)),
                time.perf_counter() - started,
                extra={"event": "transactions_fenced_previous", "partitions": wanted},
            )

    async def _drop(self, partition: int) -> None:
        producer = self._producers.pop(partition, None)
        self._fenced.discard(partition)
        if producer is not None:
            await producer.stop()  # aborts an open transaction

    async def commit(self, parts: Mapping[int, PartitionCommit]) -> list[Written]:
        """One transaction per partition, all at once; the acknowledged batches. Fenced
        if a partition's producer was fenced (the other partitions committed); another
        failure propagates after every partition has finished (the worker stops and
        replays from its last commit)."""
        chosen = [(p, part) for p, part in parts.items() if part]
        if self._committing is None:
            self._committing = asyncio.Lock()
        # one transaction at a time per producer: Faust can start a commit (its timer, a
        # rebalance) while another is under way, and a second begin_transaction would
        # find the first's transaction, or send after its commit
        async with self._committing:
            results = await asyncio.gather(
                *(self._commit_one(p, part) for p, part in chosen), return_exceptions=True
            )
        acks: list[Written] = []
        fenced: set[int] = set()
        failure: BaseException | None = None
        for result in results:
            if isinstance(result, Fenced):
                fenced |= result.partitions
            elif isinstance(result, BaseException):
                failure = failure or result
            else:
                acks += result
        if failure is not None:
            raise failure
        if fenced:
            raise Fenced(fenced)
        return acks

    async def _commit_one(self, partition: int, part: PartitionCommit) -> list[Written]:
        if partition in self._fenced:
            raise Fenced({partition})
        batch = self._producers[partition]
        producer = await batch.started()
        started = time.perf_counter()
        try:
            try:
                written = await self._transaction(batch, producer, part)
            except (IllegalOperation, AssertionError) as exc:
                # aiokafka's answer once a fence it saw in the background made the
                # producer's transactions fail for good: name the fence
                cause = transactions_failed_by(producer)
                if isinstance(cause, ProducerFenced):
                    raise cause from exc
                raise
        except ProducerFenced as exc:
            self._fenced.add(partition)
            self._metrics.transactions.labels("fenced").inc()
            log.warning(
                "input partition %d: fenced by a newer owner (%s); its uncommitted work is dropped",
                partition,
                exc,
                extra={"event": "transaction_fenced", "partition": partition},
            )
            raise Fenced({partition}) from exc
        self._metrics.transactions.labels("committed").inc()
        self._metrics.transaction_seconds.observe(time.perf_counter() - started)
        return written

    async def _transaction(
        self, batch: BatchProducer, producer: Any, part: PartitionCommit
    ) -> list[Written]:
        """One transaction: begin, the records, the offsets, commit; aborted on failure."""
        await producer.begin_transaction()
        try:
            sends: list[Awaitable[Written]] = await batch.send_all(part.records)
            written = list(await asyncio.gather(*sends))
            if part.offsets:
                await producer.send_offsets_to_transaction(
                    {TopicPartition(t, p): o for (t, p), o in part.offsets.items()},
                    self._group_id,
                )
            await producer.commit_transaction()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.abort_transaction()
            self._metrics.transactions.labels("aborted").inc()
            raise
        return written

    async def stop(self) -> None:
        for partition in list(self._producers):
            await self._drop(partition)


async def check_transactions(client: Client, app_id: str, wait_seconds: float = 20.0) -> None:
    """Start (and stop) a transactional producer: TransactionsUnsupported, naming the
    setting, when the broker cannot (the embedded broker answers InitProducerId with an
    error)."""
    probe = BatchProducer(
        client,
        max_message_bytes=1024 * 1024,
        delivery_timeout_seconds=max(10.0, wait_seconds),
        transactional_id=f"{app_id}-startup-check",
    )
    try:
        async with asyncio.timeout(wait_seconds):
            await probe.started()
    except TransactionalIdAuthorizationFailed:
        raise TransactionsUnsupported(
            f"not authorized: processing_guarantee=exactly_once needs Write and Describe on "
            f"the transactional ids prefixed {app_id}- for the worker's Kafka principal; "
            f'`vipstream acls` prints every ACL a worker needs (README "Security")'
        ) from None
    except (KafkaError, TimeoutError, OSError) as exc:
        raise TransactionsUnsupported(
            f"processing_guarantee=exactly_once needs a broker with transactions "
            f"(Apache Kafka); {','.join(options_of(client)['bootstrap_servers'])} refused "
            f"one: {exc!r}. "
            f"Set VIPSTREAM_PROCESSING_GUARANTEE=at_least_once, or point the worker at "
            f"Apache Kafka."
        ) from exc
    finally:
        await probe.stop()

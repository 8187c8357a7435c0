"""Faust's consumer, and aiokafka's under it, beyond their public API.

Each reach below names the upstream defect or the missing API it works around;
tests/agents/test_faust_port.py fails when faust-streaming or aiokafka changes one of
these attributes (pinned: faust-streaming 0.15.3, aiokafka 0.14).

- `Consumer._committed_offset` (faust): the committed offset of each partition, as
  Faust records it. No public accessor; read for the caught-up test, the committed-offset
  gauge and the commit barrier.
- `Consumer._filter_tps_with_pending_acks`, `_filter_committable_offsets`, `_acked`,
  `_acked_index`, `_gap` (faust): the acknowledgement bookkeeping the commit barrier
  replaces for input partitions (Faust can commit past an event its stream dropped, or
  stop committing a partition for good: agents/engine/frontier.py).
- `Consumer._commit_offsets` (faust): the commit itself, without Faust's own
  `force_commit`, which the barrier replaces. faust-streaming #316: it records offsets as
  committed even when the broker refused the commit; `restore_committed` undoes that.
- `Consumer.force_commit` (faust) is replaced on the instance by the barrier.
- `ProducerBuffer.flush()` (faust) returns after 0.1 s with messages still queued;
  `drain` waits until the buffer is empty.
- `Consumer._thread._create_worker_consumer` and aiokafka's `_fetch_max_wait_ms` and
  `_isolation_level`: Faust creates its aiokafka consumer with fetch_max_wait_ms=1500,
  fixed, and reads read_committed only in its own exactly-once mode.
- `Consumer._thread._consumer._coordinator._coordination_task` (faust, aiokafka): the
  task that runs the group protocol; an error it ends with is otherwise silent.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from faust.exceptions import ConsumerNotStarted
from faust.types import TP

from agents.metrics import PartitionLag


def committed_offsets(consumer: Any) -> Mapping[Any, int]:
    """Faust's record of each partition's committed offset (a live view)."""
    committed: Mapping[Any, int] = consumer._committed_offset
    return committed


class FaustPositions:
    """The engine's `InputPositions` over a Faust consumer."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer

    def highwater(self, topic: str, partition: int) -> int | None:
        try:
            highwater: int | None = self._consumer.highwater(TP(topic, partition))
        except (AssertionError, KeyError, AttributeError, TypeError):
            return None
        return highwater

    def committed(self, topic: str, partition: int) -> int | None:
        offset: int | None = self._consumer._committed_offset.get(TP(topic, partition))
        return offset


class FaustCommitter:
    """The commit barrier's `Committer` (agents/engine/barrier.py) over Faust's consumer
    and Faust's own producer (which carries the value summaries)."""

    def __init__(self, consumer: Any, producer: Any) -> None:
        self._consumer = consumer
        self._producer = producer  # resolved when used: Faust creates it on first use

    def pending(self, topics: Any) -> list[Any]:
        return list(self._consumer._filter_tps_with_pending_acks(topics))

    def acknowledged(self, tps: list[Any]) -> dict[Any, int]:
        offsets: dict[Any, int] = self._consumer._filter_committable_offsets(tps)
        return offsets

    def forget_acknowledged(self, tp: Any) -> None:
        consumer = self._consumer
        consumer._acked[tp].clear()
        consumer._acked_index[tp].clear()
        consumer._gap.pop(tp, None)

    def committed(self) -> Mapping[Any, int]:
        return committed_offsets(self._consumer)

    def assignment(self) -> set[Any]:
        assigned: set[Any] = self._consumer.assignment()
        return assigned

    async def drain(self) -> None:
        await drain(self._producer())

    async def commit(self, offsets: dict[Any, int], start_new_transaction: bool) -> bool:
        committed: bool = await self._consumer._commit_offsets(
            offsets, start_new_transaction=start_new_transaction
        )
        return committed

    def note_committed(self, offsets: dict[Any, int]) -> None:
        """What Faust's `_commit_offsets` records after a commit of its own."""
        self._consumer._committed_offset.update(offsets)
        self._consumer.app.monitor.on_tp_commit(offsets)

    def restore_committed(self, tp: Any, previous: int | None) -> None:
        committed = self._consumer._committed_offset
        if previous is None:
            committed.pop(tp, None)
        else:
            committed[tp] = previous


async def drain(producer: Any) -> None:
    """Hand every buffered message to the Kafka client and wait for acknowledgements."""
    buffer = producer.buffer
    while buffer.size:
        await buffer.flush()
    await producer.flush()


def configure_fetching(consumer: Any, wait_seconds: float, *, read_committed: bool) -> None:
    """Faust creates its aiokafka consumer with fetch_max_wait_ms=1500, fixed
    (transport/drivers/aiokafka.py). The embedded broker holds a caught-up fetch for most
    of that even when records arrive, so each event waited up to 1.5 s. And it reads
    `read_committed` only with its own exactly-once mode, which vipstream's replaces
    (agents/kafka/transactions.py): recovery must not apply an aborted transaction's
    state. Both set on the aiokafka consumer when it is created (before it starts its
    fetcher)."""
    thread = consumer._thread
    create = thread._create_worker_consumer

    def create_with_wait(*args: Any, **kwargs: Any) -> Any:
        created = create(*args, **kwargs)
        created._fetch_max_wait_ms = int(wait_seconds * 1000)
        if read_committed:
            created._isolation_level = "read_committed"
        return created

    thread._create_worker_consumer = create_with_wait


def group_coordination_error(consumer: Any) -> BaseException | None:
    """The error that ended the Kafka client's consumer-group coordination, once it has.

    aiokafka runs the group protocol (join, sync, heartbeat) in one task. An error it does
    not expect ends that task for good: the worker then never joins, consumes or commits
    again, yet its process, web server and broker connection look healthy. The embedded
    broker (Tansu 0.6) triggers it: a member that joins while a killed member's session
    has not expired yet can be handed a zero-length assignment, which aiokafka fails to
    decode (ValueError). None while coordination runs or after it ended normally (close).
    """
    thread = getattr(consumer, "_thread", None)  # faust's aiokafka consumer thread
    client = getattr(thread, "_consumer", None)  # aiokafka.AIOKafkaConsumer
    coordinator = getattr(client, "_coordinator", None)
    task = getattr(coordinator, "_coordination_task", None)
    if task is None or not task.done() or task.cancelled():
        return None
    error: BaseException | None = task.exception()
    return error


def input_lag(
    consumer: Any,
    topics: Collection[str],
    processed: Mapping[tuple[str, int], int] | None = None,
) -> list[PartitionLag]:
    """Lag of every partition of `topics` assigned to a Faust consumer.

    The position is the offset after the last message processed: the furthest of
    `processed` ((topic, partition) -> next offset, kept by the value engine as each
    message is applied), of the offsets the agent acknowledged and of the committed
    offset; 0 when none is known (a new group that has processed nothing on the
    partition yet: the whole partition counts as lag). The highwater is the one the
    consumer learnt with its latest fetch of the partition.
    """
    try:
        assigned = list(consumer.assignment())
    except (ConsumerNotStarted, AttributeError):
        return []  # before the consumer thread started, or after it stopped
    lags = []
    for tp in assigned:
        if tp.topic not in topics:
            continue
        try:
            highwater = consumer.highwater(tp)
        except (AssertionError, KeyError, AttributeError, TypeError, ConsumerNotStarted):
            continue  # revoked meanwhile
        if highwater is None:
            continue
        position = _position(consumer, tp, (processed or {}).get((tp.topic, tp.partition)))
        lags.append((tp.topic, tp.partition, max(0, int(highwater) - position)))
    return lags


def _position(consumer: Any, tp: Any, processed: int | None) -> int:
    """Faust keeps, per partition, the acknowledged offsets not yet committed and the
    committed offset (the next one to read); it clears both when a partition is revoked.
    A commit drops the acknowledged offsets before it records the new committed offset,
    so while it waits for the broker neither says how far processing got: `processed`
    does, and the committed offset covers a partition processed by another worker
    since this one last held it."""
    acked = consumer._acked.get(tp)
    committed = consumer._committed_offset.get(tp)
    candidates = [x for x in (processed, committed) if x is not None]
    if acked:
        candidates.append(max(acked) + 1)
    return max(candidates, default=0)

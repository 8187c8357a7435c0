"""The commit barrier: outputs, then state, are acknowledged before exactly the offsets
of the snapshot are committed; events keep flowing during a commit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP

from agents.engine.barrier import CommitBarrier, DeliveryError, drain
from agents.worker.app import VipApp


class Buffer:
    """Like Faust's ProducerBuffer: flush() may return with messages still queued."""

    def __init__(self, log: list[str]) -> None:
        self.size = 0
        self._log = log

    async def flush(self) -> None:
        if self.size:
            self.size -= 1  # gives up after one message, as Faust's does after 0.1 s
            self._log.append("buffer-flush")


class Producer:
    def __init__(self, log: list[str]) -> None:
        self.buffer = Buffer(log)
        self._log = log

    async def flush(self) -> None:
        assert self.buffer.size == 0, "client flushed before the buffer was drained"
        self._log.append("producer-flush")


class Consumer:
    """The Faust consumer internals the barrier uses."""

    def __init__(self, log: list[str]) -> None:
        self.acked = {"calls-0": 10}
        self.committed: list[dict[str, int]] = []
        self._committed_offset: dict[str, int] = {}
        self._log = log

    def assignment(self) -> set[str]:
        return set(self.acked)

    def _filter_tps_with_pending_acks(self, topics: Any) -> list[str]:
        return list(self.acked)

    def _filter_committable_offsets(self, tps: list[str]) -> dict[str, int]:
        self._log.append("snapshot-offsets")
        return {tp: self.acked[tp] for tp in tps}

    async def _commit_offsets(self, offsets: dict[str, int], start_new_transaction: bool) -> bool:
        self._log.append("commit-offsets")
        self.committed.append(dict(offsets))
        self._committed_offset.update(offsets)
        return True


def done(result: Any = None, error: BaseException | None = None) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
    return future


async def test_drain_waits_until_the_buffer_is_empty() -> None:
    log: list[str] = []
    producer = Producer(log)
    producer.buffer.size = 3
    await drain(producer)
    assert log == ["buffer-flush"] * 3 + ["producer-flush"]


async def test_order_snapshot_outputs_state_offsets() -> None:
    log: list[str] = []
    producer = Producer(log)
    consumer = Consumer(log)

    def take_outputs() -> list[Any]:
        log.append("take-outputs")
        return [done()]

    def snapshot_state() -> str:
        log.append("snapshot-state")
        return "state@10"

    async def write_state(snapshot: str) -> list[Any]:
        log.append(f"write {snapshot}")
        return [done("ack-1")]

    def confirm_state(snapshot: str, acks: list[Any]) -> None:
        log.append(f"confirm {snapshot} {acks}")

    barrier = CommitBarrier(
        producer,
        take_outputs=take_outputs,
        snapshot_state=snapshot_state,
        write_state=write_state,
        confirm_state=confirm_state,
        observe_seconds=lambda s: log.append("timed"),
    )
    assert await barrier.wrap(consumer)() is True
    assert log == [
        "snapshot-offsets",
        "take-outputs",
        "snapshot-state",  # one synchronous cut
        "producer-flush",  # outputs delivered ...
        "write state@10",  # state, acknowledged ...
        "confirm state@10 ['ack-1']",  # the local store, once the changelog has it
        "timed",
        "commit-offsets",
    ]  # ... before the offsets
    assert consumer.committed == [{"calls-0": 10}]


@pytest.mark.parametrize("failing", ["outputs", "state"])
async def test_a_failed_delivery_commits_nothing(failing: str) -> None:
    log: list[str] = []
    consumer = Consumer(log)
    error = RuntimeError("broker said no")

    def take_outputs() -> list[Any]:
        return [done(error=error)] if failing == "outputs" else [done()]

    async def write_state(snapshot: Any) -> list[Any]:
        log.append("write-state")
        return [done(error=error)] if failing == "state" else [done()]

    barrier = CommitBarrier(
        Producer(log),
        take_outputs=take_outputs,
        snapshot_state=lambda: None,
        write_state=write_state,
        confirm_state=lambda snapshot, acks: log.append("confirm-state"),
        observe_seconds=lambda s: None,
    )
    with pytest.raises(DeliveryError, match="broker said no"):
        await barrier.wrap(consumer)()
    assert consumer.committed == []
    assert "confirm-state" not in log  # the local store never runs ahead of the changelog
    if failing == "outputs":
        assert "write-state" not in log  # no state is written past a lost output


async def test_events_applied_during_a_commit_wait_for_the_next_one() -> None:
    log: list[str] = []
    consumer = Consumer(log)
    outputs_delivered = asyncio.Event()
    pending_output: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    state = {"version": 10}
    written: list[int] = []

    async def write_state(snapshot: int) -> list[Any]:
        written.append(snapshot)
        return [done()]

    barrier = CommitBarrier(
        Producer(log),
        take_outputs=lambda: [pending_output],
        snapshot_state=lambda: state["version"],
        write_state=write_state,
        confirm_state=lambda snapshot, acks: None,
        observe_seconds=lambda s: None,
    )
    commit = asyncio.create_task(barrier.wrap(consumer)())
    await asyncio.sleep(0)
    # the commit waits for its outputs; meanwhile more events are applied and acked
    state["version"] = 11
    consumer.acked["calls-0"] = 11
    assert not outputs_delivered.is_set()
    pending_output.set_result(None)
    await commit
    assert written == [10]  # the snapshot, not the live state
    assert consumer.committed == [{"calls-0": 10}]  # not past the snapshot
    await barrier.wrap(consumer)()
    assert written == [10, 11]
    assert consumer.committed[-1] == {"calls-0": 11}


# -- a commit the broker refuses (faust-streaming #316) -----------------------------------
CALLS_0 = TP("calls", 0)


class RefusingBroker:
    """Stands in for aiokafka's commit: answers each commit with the next planned result
    (False is what Faust returns for CommitFailedError "already rebalanced")."""

    def __init__(self, consumer: Any, results: list[bool]) -> None:
        self.results = list(results)
        self.commits: list[dict[TP, int]] = []
        consumer._commit = self.commit
        consumer.assignment = lambda: {CALLS_0}

    async def commit(self, offsets: Any) -> bool:
        self.commits.append(dict(offsets))
        return self.results.pop(0)


def acknowledge(app: VipApp, first: int, end: int) -> None:
    """What the agent and Faust do when the agent has applied the events at these offsets:
    the agent moves its frontier, Faust acknowledges."""
    consumer = app.consumer
    for offset in range(first, end):
        app.vip.frontier.advance(CALLS_0, offset)
        consumer._acked[CALLS_0].append(offset)
        consumer._acked_index[CALLS_0].add(offset)


def committed(consumer: Any) -> int | None:
    value: int | None = consumer._committed_offset.get(CALLS_0)
    return value


async def test_faust_records_a_refused_commit_as_done(app: VipApp) -> None:
    """The upstream bug the barrier guards against, on Faust's own consumer code.

    When faust-streaming fixes #316 this test fails: the guard can then go.
    """
    consumer = app.consumer
    broker = RefusingBroker(consumer, [False])
    acknowledge(app, 0, 10)
    offsets = consumer._filter_committable_offsets([CALLS_0])
    assert await FaustConsumer._commit_offsets(consumer, offsets) is False
    assert broker.commits == [{CALLS_0: 10}]
    assert committed(consumer) == 10  # believed committed although the broker refused
    assert consumer._acked[CALLS_0] == []  # and no longer pending: never sent again


async def test_a_refused_commit_is_undone_and_sent_again(app: VipApp) -> None:
    consumer = app.consumer  # a real Faust consumer, with the barrier installed
    broker = RefusingBroker(consumer, [True, False, True])
    acknowledge(app, 0, 5)
    assert await consumer.force_commit() is True
    acknowledge(app, 5, 10)
    assert await consumer.force_commit() is False  # refused
    assert committed(consumer) == 5  # Faust's bookkeeping put back
    # no new events on the partition: the next commit still sends the refused offset
    assert await consumer.force_commit() is True
    assert broker.commits == [{CALLS_0: 5}, {CALLS_0: 10}, {CALLS_0: 10}]
    assert committed(consumer) == 10
    assert await consumer.force_commit() is False  # nothing left to commit
    assert len(broker.commits) == 3


async def test_commits_continue_after_a_refused_one(app: VipApp) -> None:
    """Putting the committed offset back is not enough with Faust's bookkeeping alone: it
    then sees a gap before the next acknowledged offset and stops committing the
    partition. Committing from the frontier, the next commit covers the refused offsets
    and everything applied since."""
    consumer = app.consumer
    broker = RefusingBroker(consumer, [True, False, True, True])
    acknowledge(app, 0, 5)
    await consumer.force_commit()
    acknowledge(app, 5, 10)
    await consumer.force_commit()  # refused
    acknowledge(app, 10, 15)
    assert await consumer.force_commit() is True
    assert broker.commits[-1] == {CALLS_0: 15}  # the refused offsets and what followed
    acknowledge(app, 15, 20)
    assert await consumer.force_commit() is True
    assert broker.commits[-1] == {CALLS_0: 20}
    assert committed(consumer) == 20
    assert consumer._acked[CALLS_0] == []  # Faust's acknowledgements do not pile up


async def test_a_refused_offset_is_not_retried_after_the_partition_moved(app: VipApp) -> None:
    consumer = app.consumer
    broker = RefusingBroker(consumer, [False])
    acknowledge(app, 0, 10)
    assert await consumer.force_commit() is False
    assert committed(consumer) is None  # never committed before: no entry, as before
    consumer.assignment = set  # revoked: the new owner resumes from the broker's offset
    assert await consumer.force_commit() is False
    assert broker.commits == [{CALLS_0: 10}]


# -- offsets Faust's stream dropped (agents/engine/frontier.py) -----------------------------------
def faust_ack(consumer: Any, offsets: range) -> None:
    """Faust's acknowledgements alone: the agent never applied anything else."""
    for offset in offsets:
        consumer._acked[CALLS_0].append(offset)
        consumer._acked_index[CALLS_0].add(offset)


@pytest.mark.parametrize(
    ("acked", "faust_commits"),
    [
        (range(11, 15), 15),  # offset 10 dropped: committed past it, the event is lost
        (range(12, 15), None),  # 10 and 11 dropped: never committed again, a stall
    ],
)
def test_faust_commits_past_one_dropped_offset_and_stalls_on_two(
    app: VipApp, acked: range, faust_commits: int | None
) -> None:
    """The upstream behaviour the frontier replaces, on Faust's own consumer code."""
    consumer = app.consumer
    consumer._committed_offset[CALLS_0] = 10
    faust_ack(consumer, acked)
    offsets = consumer._filter_committable_offsets([CALLS_0])
    assert offsets.get(CALLS_0) == faust_commits


async def test_the_barrier_commits_the_frontier_not_faust_acknowledgements(app: VipApp) -> None:
    consumer = app.consumer
    broker = RefusingBroker(consumer, [True, True])
    consumer._committed_offset[CALLS_0] = 10
    faust_ack(consumer, range(11, 15))  # offset 10 dropped: the agent applied nothing
    assert await consumer.force_commit() is False
    assert broker.commits == []  # nothing committed past the missing event
    assert consumer._acked[CALLS_0] == []  # and Faust's list does not pile up
    acknowledge(app, 10, 15)  # the agent read 10 back, then applied the rest
    assert await consumer.force_commit() is True
    assert broker.commits == [{CALLS_0: 15}]

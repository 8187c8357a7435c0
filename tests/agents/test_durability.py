"""The commit barrier (agents/engine/barrier.py): outputs, then state, are acknowledged
before exactly the offsets of the snapshot are committed; events keep flowing during a
commit. Against a committer of the test's own (the Faust one: test_faust_port.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, NamedTuple

import pytest

from agents.engine.barrier import (
    CommitBarrier,
    DeliveryError,
    Fenced,
    PartitionCommit,
    TransactionalBarrier,
)
from agents.engine.store import Snapshot


class Committer:
    """A framework's offset bookkeeping, in dicts (agents.engine.barrier.Committer)."""

    def __init__(self, log: list[str]) -> None:
        self.acked = {"calls-0": 10}
        self.committed_offsets: list[dict[str, int]] = []
        self.recorded: dict[str, int] = {}
        self._log = log

    def pending(self, topics: Any) -> list[str]:
        return list(self.acked)

    def acknowledged(self, tps: list[str]) -> dict[str, int]:
        self._log.append("snapshot-offsets")
        return {tp: self.acked[tp] for tp in tps}

    def forget_acknowledged(self, tp: str) -> None:
        self.acked.pop(tp, None)

    def committed(self) -> dict[str, int]:
        return self.recorded

    def assignment(self) -> set[str]:
        return set(self.acked)

    async def drain(self) -> None:
        self._log.append("producer-flush")

    async def commit(self, offsets: dict[str, int], start_new_transaction: bool) -> bool:
        self._log.append("commit-offsets")
        self.committed_offsets.append(dict(offsets))
        self.recorded.update(offsets)
        return True

    def restore_committed(self, tp: str, previous: int | None) -> None:
        raise AssertionError("no commit is refused here")

    def note_committed(self, offsets: dict[Any, int]) -> None:
        self._log.append("note-committed")
        self.recorded.update(offsets)


def done(result: Any = None, error: BaseException | None = None) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
    return future


async def test_order_snapshot_outputs_state_offsets() -> None:
    log: list[str] = []
    consumer = Committer(log)

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
        take_outputs=take_outputs,
        snapshot_state=snapshot_state,
        write_state=write_state,
        confirm_state=confirm_state,
        observe_seconds=lambda s: log.append("timed"),
    )
    assert await barrier.commit(consumer) is True
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
    assert consumer.committed_offsets == [{"calls-0": 10}]


@pytest.mark.parametrize("failing", ["outputs", "state"])
async def test_a_failed_delivery_commits_nothing(failing: str) -> None:
    log: list[str] = []
    consumer = Committer(log)
    error = RuntimeError("broker said no")

    def take_outputs() -> list[Any]:
        return [done(error=error)] if failing == "outputs" else [done()]

    async def write_state(snapshot: Any) -> list[Any]:
        log.append("write-state")
        return [done(error=error)] if failing == "state" else [done()]

    barrier = CommitBarrier(
        take_outputs=take_outputs,
        snapshot_state=lambda: None,
        write_state=write_state,
        confirm_state=lambda snapshot, acks: log.append("confirm-state"),
        observe_seconds=lambda s: None,
    )
    with pytest.raises(DeliveryError, match="broker said no"):
        await barrier.commit(consumer)
    assert consumer.committed_offsets == []
    assert "confirm-state" not in log  # the local store never runs ahead of the changelog
    if failing == "outputs":
        assert "write-state" not in log  # no state is written past a lost output


async def test_events_applied_during_a_commit_wait_for_the_next_one() -> None:
    log: list[str] = []
    consumer = Committer(log)
    outputs_delivered = asyncio.Event()
    pending_output: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    state = {"version": 10}
    written: list[int] = []

    async def write_state(snapshot: int) -> list[Any]:
        written.append(snapshot)
        return [done()]

    barrier = CommitBarrier(
        take_outputs=lambda: [pending_output],
        snapshot_state=lambda: state["version"],
        write_state=write_state,
        confirm_state=lambda snapshot, acks: None,
        observe_seconds=lambda s: None,
    )
    commit = asyncio.create_task(barrier.commit(consumer))
    await asyncio.sleep(0)
    # the commit waits for its outputs; meanwhile more events are applied and acked
    state["version"] = 11
    consumer.acked["calls-0"] = 11
    assert not outputs_delivered.is_set()
    pending_output.set_result(None)
    await commit
    assert written == [10]  # the snapshot, not the live state
    assert consumer.committed_offsets == [{"calls-0": 10}]  # not past the snapshot
    await barrier.commit(consumer)
    assert written == [10, 11]
    assert consumer.committed_offsets[-1] == {"calls-0": 11}


# -- exactly once: one transaction per input partition ------------------------------------


class TP(NamedTuple):
    topic: str
    partition: int


class Transactions:
    """Stands in for agents/kafka/transactions.py: records what each transaction held."""

    def __init__(self, owned: set[int], fenced: set[int] | None = None) -> None:
        self.owned = owned
        self.fenced = fenced or set()
        self.committed: list[dict[int, PartitionCommit]] = []

    async def commit(self, parts: Mapping[int, PartitionCommit]) -> list[Any]:
        if self.fenced & set(parts):
            raise Fenced(self.fenced & set(parts))
        self.committed.append(dict(parts))
        return [
            Ack(topic, partition, 100 + i)
            for part in parts.values()
            for i, (topic, partition, _, _) in enumerate(part.records)
        ]


class Ack(NamedTuple):
    topic: str
    partition: int
    offset: int


class OffsetBook(Committer):
    def __init__(self, log: list[str], acked: dict[Any, int]) -> None:
        super().__init__(log)
        self.acked = acked


def transactional(
    transactions: Transactions, log: list[str], future: asyncio.Future[None]
) -> TransactionalBarrier:
    outputs = [("tiers", 0, b"a", b"out-a"), ("tiers", 1, b"b", b"out-b"), ("tiers", 5, b"c", b"x")]
    state = Snapshot(7, [(b"a", 0, b"state-a"), (b"b", 1, b"state-b"), (b"c", 5, b"state-c")])
    return TransactionalBarrier(
        take_records=lambda: ([(record[1], record) for record in outputs], future),
        snapshot_state=lambda: state,
        changelog_topic="state-changelog",
        transactions=transactions,
        confirm_state=lambda snapshot, acks: log.append(f"confirm {snapshot.changes} {acks}"),
        observe_seconds=lambda s: None,
    )


async def test_a_transaction_per_partition_holds_its_outputs_state_and_offsets() -> None:
    log: list[str] = []
    book = OffsetBook(log, {TP("calls", 0): 10, TP("orders", 0): 4, TP("calls", 5): 3})
    transactions = Transactions(owned={0, 1})
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    assert await transactional(transactions, log, future).commit(book) is True
    [parts] = transactions.committed
    assert parts == {
        0: PartitionCommit(
            [("tiers", 0, b"a", b"out-a"), ("state-changelog", 0, b"a", b"state-a")],
            {("calls", 0): 10, ("orders", 0): 4},
        ),
        1: PartitionCommit(
            [("tiers", 1, b"b", b"out-b"), ("state-changelog", 1, b"b", b"state-b")], {}
        ),
    }  # partition 5 is no longer this worker's: its new owner replays its events
    assert log == [
        "snapshot-offsets",
        "producer-flush",
        # the local store gets the committed states, with the changelog's offsets only
        "confirm [(b'a', 0, b'state-a'), (b'b', 1, b'state-b')] "
        "[Ack(topic='state-changelog', partition=0, offset=101), "
        "Ack(topic='state-changelog', partition=1, offset=101)]",
        "note-committed",
    ]
    assert book.recorded == {TP("calls", 0): 10, TP("orders", 0): 4}
    assert future.done()  # the day's outputs are out
    assert future.exception() is None


async def test_a_fenced_partition_confirms_and_records_nothing() -> None:
    log: list[str] = []
    book = OffsetBook(log, {TP("calls", 0): 10})
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    barrier = transactional(Transactions(owned={0, 1}, fenced={1}), log, future)
    with pytest.raises(Fenced, match=r"\[1\]"):
        await barrier.commit(book)
    assert log == ["snapshot-offsets", "producer-flush"]
    assert book.recorded == {}
    assert isinstance(future.exception(), Fenced)

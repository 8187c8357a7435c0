"""The commit barrier: outputs, then state, are acknowledged before exactly the offsets
of the snapshot are committed; events keep flowing during a commit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.durability import CommitBarrier, DeliveryError, drain


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
    """The three Faust consumer internals the barrier uses."""

    def __init__(self, log: list[str]) -> None:
        self.acked = {"calls-0": 10}
        self.committed: list[dict[str, int]] = []
        self._log = log

    def _filter_tps_with_pending_acks(self, topics: Any) -> list[str]:
        return list(self.acked)

    def _filter_committable_offsets(self, tps: list[str]) -> dict[str, int]:
        self._log.append("snapshot-offsets")
        return {tp: self.acked[tp] for tp in tps}

    async def _commit_offsets(self, offsets: dict[str, int], start_new_transaction: bool) -> bool:
        self._log.append("commit-offsets")
        self.committed.append(dict(offsets))
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

    def write_state(snapshot: str) -> list[Any]:
        log.append(f"write {snapshot}")
        producer.buffer.size = 2  # the changelog writes are queued
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
        "write state@10",
        "buffer-flush",
        "buffer-flush",
        "producer-flush",  # state
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

    def write_state(snapshot: Any) -> list[Any]:
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

    barrier = CommitBarrier(
        Producer(log),
        take_outputs=lambda: [pending_output],
        snapshot_state=lambda: state["version"],
        write_state=lambda snapshot: written.append(snapshot) or [done()],
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

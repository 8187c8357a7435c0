"""The commit barrier (agents/engine/barrier.py): outputs, then state, are acknowledged
before exactly the offsets of the snapshot are committed; events keep flowing during a
commit. Against a committer of the test's own (the Faust one: test_faust_port.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.engine.barrier import CommitBarrier, DeliveryError


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

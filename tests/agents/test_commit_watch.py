"""CommitWatch: partitions whose offsets stopped being committed while processed offsets
wait, from Faust's consumer bookkeeping (`_acked`, `_committed_offset`)."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest

from agents.health import CommitWatch, group_coordination_error

TP = ("orders", 3)


def consumer(committed: int | None, acked: list[int]) -> Any:
    return SimpleNamespace(
        _acked=defaultdict(list, {TP: acked}),
        _committed_offset=defaultdict(lambda: None, {TP: committed}),
        _read_offset={TP: max(acked) if acked else None},
        _gap={},
    )


@pytest.mark.parametrize(
    ("states", "stalled_at_end"),
    [
        # (seconds, committed, acked) observed in turn
        ([(0, 809, [811, 812]), (31, 809, [811, 812, 813])], True),  # stuck behind 810
        ([(0, 809, [811]), (29, 809, [811, 812])], False),  # not long enough yet
        ([(0, 809, [810]), (20, 900, [901]), (45, 900, [901, 902])], False),  # moved at 20
        ([(0, 809, [810]), (20, 900, [901]), (51, 900, [901, 902])], True),  # then stuck
        ([(0, 809, [810]), (31, 809, [])], False),  # everything committed
        ([(0, None, [0, 1]), (40, None, [0, 1, 2])], True),  # never committed at all
    ],
)
def test_a_partition_is_stalled_after_30_s_without_a_commit_while_acks_wait(
    states: list[tuple[float, int | None, list[int]]], stalled_at_end: bool
) -> None:
    watch = CommitWatch(after_seconds=30)
    found: list[Any] = []
    for now, committed, acked in states:
        found = watch.check(consumer(committed, acked), now)
    assert bool(found) == stalled_at_end
    if found:
        (stall,) = found
        _, committed, acked = states[-1]
        assert (stall.tp, stall.committed, stall.first_acked, stall.acked) == (
            TP,
            committed,
            min(acked),
            len(acked),
        )


class _Task:
    def __init__(self, *, done: bool, error: BaseException | None = None, cancelled=False):
        self._done, self._error, self._cancelled = done, error, cancelled

    def done(self) -> bool:
        return self._done

    def cancelled(self) -> bool:
        return self._cancelled

    def exception(self) -> BaseException | None:
        return self._error


def _faust_consumer(task: Any) -> Any:
    coordinator = SimpleNamespace(_coordination_task=task)
    return SimpleNamespace(
        _thread=SimpleNamespace(_consumer=SimpleNamespace(_coordinator=coordinator))
    )


BOOM = ValueError("empty assignment")


@pytest.mark.parametrize(
    ("consumer_", "expected"),
    [
        (SimpleNamespace(), None),  # not started: no thread yet
        (_faust_consumer(None), None),
        (_faust_consumer(_Task(done=False)), None),  # running
        (_faust_consumer(_Task(done=True)), None),  # ended normally: closed
        (_faust_consumer(_Task(done=True, cancelled=True)), None),
        (_faust_consumer(_Task(done=True, error=BOOM)), BOOM),
    ],
)
def test_group_coordination_error(consumer_: Any, expected: BaseException | None) -> None:
    assert group_coordination_error(consumer_) is expected

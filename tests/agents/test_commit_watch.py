"""CommitWatch: input partitions whose committed offset stays behind the frontier of
applied events; group_coordination_error: the client's group coordination died."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from agents.engine.commit_watch import CommitWatch
from agents.faust_port.consumer import group_coordination_error

TP = ("orders", 3)


@pytest.mark.parametrize(
    ("states", "stalled_at_end"),
    [
        # (seconds, committed, frontier) observed in turn
        ([(0, 809, 813), (31, 809, 814)], True),  # stuck at 809
        ([(0, 809, 812), (29, 809, 813)], False),  # not long enough yet
        ([(0, 809, 811), (20, 900, 902), (45, 900, 903)], False),  # moved at 20
        ([(0, 809, 811), (20, 900, 902), (51, 900, 903)], True),  # then stuck
        ([(0, 809, 811), (31, 811, 811)], False),  # committed up to the frontier
        ([(0, 809, 811), (10, 811, 811), (35, 811, 820), (50, 811, 830)], False),  # again
        ([(0, None, 2), (40, None, 3)], True),  # never committed at all
        ([(0, 809, 811), (40, None, None)], False),  # revoked: no frontier any more
    ],
)
def test_a_partition_is_stalled_after_30_s_behind_its_frontier(
    states: list[tuple[float, int | None, int | None]], stalled_at_end: bool
) -> None:
    watch = CommitWatch(after_seconds=30)
    found: list[Any] = []
    for now, committed, position in states:
        positions = {} if position is None else {TP: position}
        found = watch.check(positions, {TP: committed}, now)
    assert bool(found) == stalled_at_end
    if found:
        (stall,) = found
        _, committed, position = states[-1]
        assert (stall.tp, stall.committed, stall.position) == (TP, committed, position)


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

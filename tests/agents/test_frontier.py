"""The input frontier: which offsets the agent applies, skips or must read back first,
and what the commit barrier may commit (agents/engine/frontier.py)."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from agents.engine.frontier import APPLY, REPLAYED, FetchedSpan, Hole, InputFrontier


class TP(NamedTuple):
    topic: str
    partition: int


CALLS_0 = TP("calls", 0)
CALLS_1 = TP("calls", 1)


@pytest.mark.parametrize(
    ("applied", "committed", "offset", "verdict"),
    [
        # nothing applied since the assignment: the committed offset is the frontier
        ([], None, 0, APPLY),
        ([], None, 3, Hole(None, 3)),  # never committed: from the partition's start
        ([], 10, 10, APPLY),
        ([], 10, 12, Hole(10, 12)),  # the committed offset itself never arrived
        ([], 10, 9, REPLAYED),
        # applied since: the frontier moved past the committed offset
        ([10, 11], 10, 12, APPLY),
        ([10, 11], 10, 11, REPLAYED),
        ([10, 11], 10, 15, Hole(12, 15)),
        ([0, 1, 2], None, 3, APPLY),
        ([0, 1, 2], None, 5, Hole(3, 5)),
        ([0, 1, 2], 1, 3, APPLY),  # Faust's committed offset lags the frontier
    ],
)
def test_check(applied: list[int], committed: int | None, offset: int, verdict: object) -> None:
    frontier = InputFrontier(["calls"])
    for o in applied:
        frontier.advance(CALLS_0, o)
    assert frontier.check(CALLS_0, offset, committed) == verdict


def test_a_hole_filled_then_the_message_that_revealed_it() -> None:
    frontier = InputFrontier(["calls"])
    frontier.advance(CALLS_0, 9)
    hole = frontier.check(CALLS_0, 14, committed=None)
    assert hole == Hole(10, 14)
    frontier.advance(CALLS_0, 11)  # the records the broker still holds in it
    frontier.advance(CALLS_0, 12)
    frontier.skip_to(CALLS_0, 14)  # 10 and 13: no record (compacted, markers)
    assert frontier.check(CALLS_0, 14, committed=None) == APPLY
    frontier.advance(CALLS_0, 14)
    assert frontier.positions() == {CALLS_0: 15}


def test_positions_are_what_may_be_committed() -> None:
    frontier = InputFrontier(["calls"])
    assert frontier.positions() == {}  # nothing applied: nothing to commit
    assert frontier.position(CALLS_0) is None
    frontier.advance(CALLS_0, 4)
    frontier.advance(CALLS_1, 0)
    frontier.advance(CALLS_0, 2)  # an older offset does not move it back
    assert frontier.positions() == {CALLS_0: 5, CALLS_1: 1}
    assert frontier.position(CALLS_0) == 5
    assert frontier.positions(["calls"]) == {CALLS_0: 5, CALLS_1: 1}
    assert frontier.positions([CALLS_1]) == {CALLS_1: 1}
    assert frontier.positions(["orders"]) == {}
    frontier.skip_to(CALLS_1, 0)  # behind the frontier: no effect
    assert frontier.positions()[CALLS_1] == 1


def test_a_revoked_assignment_starts_again_from_the_committed_offsets() -> None:
    frontier = InputFrontier(["calls"])
    frontier.advance(CALLS_0, 20)
    generation = frontier.generation
    frontier.clear()
    assert frontier.generation == generation + 1  # a hole being read meanwhile is stale
    assert frontier.positions() == {}
    assert frontier.check(CALLS_0, 15, committed=15) == APPLY


def test_owns_the_input_topics_only() -> None:
    frontier = InputFrontier(["calls", "orders"])
    assert frontier.owns(CALLS_0)
    assert frontier.owns(TP("orders", 3))
    assert not frontier.owns(TP("app-customer_state-changelog", 0))


@pytest.mark.parametrize(
    ("read_from", "found", "hole", "absent"),
    [
        (10, [10, 13, 17, 20], Hole(11, 13), True),  # 11 and 12 hold no record
        (10, [10, 13, 17, 20], Hole(14, 17), True),
        (10, [10, 13, 17, 20], Hole(12, 14), False),  # 13 holds one
        (10, [10, 13, 17, 20], Hole(18, 21), False),  # beyond what the read saw
        (10, [10, 13, 17, 20], Hole(8, 10), False),  # before it
        (10, [13, 17], Hole(10, 13), True),  # the read started in a hole
        (10, [10, 13], Hole(None, 13), False),  # from the start: always read
        (10, [], Hole(11, 12), False),  # the read found nothing: no span
    ],
)
def test_fetched_span(read_from: int, found: list[int], hole: Hole, absent: bool) -> None:
    span = FetchedSpan()
    span.note(CALLS_0, read_from, found)
    assert span.absent(CALLS_0, hole) is absent
    assert span.absent(CALLS_1, hole) is False  # another partition: unknown

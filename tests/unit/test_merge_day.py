"""Which population day a worker merges next (streams.ledger.next_merge_day)."""

from __future__ import annotations

from typing import Any

import pytest

from streams.ledger import StartReport, first_day_to_close, next_merge_day


@pytest.mark.parametrize(
    ("merged_through", "offered", "expected"),
    [
        # a fresh system: nothing closed anywhere yet
        (None, [[], [], []], None),
        # the first day closed by some partitions only: wait for the others
        (None, [[10], [10], []], None),
        # the first day closed everywhere
        (None, [[10], [10], [10]], 10),
        # a restart: every partition closed through 41, offering 40 and 41; resume at 40
        # (tiering a day twice is harmless), never at the population's first day
        (None, [[40, 41], [40, 41], [40, 41]], 40),
        # a restart while partitions are one day apart (lock-step): the common day
        (None, [[40, 41], [39, 40], [40, 41]], 40),
        # running: the next day once every partition has closed it
        (40, [[40, 41], [40, 41], [40, 41]], 41),
        (41, [[40, 41], [41, 42], [40, 41]], None),
        (41, [[41, 42], [41, 42], [41, 42]], 42),
        # a worker that fell behind (it owns no partition and read the bus late): skip ahead
        (38, [[41, 42], [41, 42]], 41),
        # nothing published at all
        (None, [], None),
    ],
)
def test_next_merge_day(
    merged_through: int | None, offered: list[list[int]], expected: int | None
) -> None:
    assert next_merge_day(merged_through, offered) == expected


@pytest.mark.parametrize(
    ("merged_through", "offered", "started", "expected"),
    [
        # the deadlock this prevents: partition 2 started a day later than the others
        # (it decided from an older view of the population), so it never offers day 10;
        # the others closed 10 and wait to merge it before they close 11
        (None, [[10], [10], [11]], [10, 10, 11], 10),
        # ... then, once the others closed 11 too, day 11 as usual
        (10, [[10, 11], [10, 11], [11]], [10, 10, 11], 11),
        # without the start days nothing could be merged: the old deadlock
        (None, [[10], [10], [11]], None, None),
        # a partition that has not closed anything has no start day: still waited for
        (None, [[10], [10], []], [10, 10, None], None),
        # days before a start are implied only where some partition offers the day
        (None, [[11], [11], [11]], [11, 11, 11], 11),
    ],
)
def test_a_partition_counts_as_offering_the_days_before_its_start(
    merged_through: int | None,
    offered: list[list[int]],
    started: list[int | None] | None,
    expected: int | None,
) -> None:
    assert next_merge_day(merged_through, offered, started) == expected


def report(started: int | None = None, *, ready: bool = True, first: int | None = None) -> Any:
    return StartReport(started, ready, first)


@pytest.mark.parametrize(
    ("why", "reports", "expected"),
    [
        ("nobody reported yet", [], None),
        ("one partition not reported", [report(first=10), report(first=11)], None),
        (
            "all ready: the population's earliest day",
            [report(first=11), report(first=10), report()],
            10,
        ),
        ("one not ready yet", [report(first=11), report(first=10, ready=False), report()], None),
        ("all ready, no events anywhere", [report(), report(), report()], None),
        (
            "another partition started: adopt its start, even if this one's events are older",
            [report(10, first=10), report(first=9), report()],
            10,
        ),
        (
            "two started apart (a race): the earliest start",
            [report(11, first=11), report(10, first=10), report(first=9)],
            10,
        ),
    ],
)
def test_the_first_day_to_close(why: str, reports: list[StartReport], expected: int | None) -> None:
    assert first_day_to_close(reports, partitions=3) == expected, why

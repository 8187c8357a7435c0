"""Which population day a worker merges next (streams.ledger.next_merge_day)."""

from __future__ import annotations

import pytest

from streams.ledger import next_merge_day


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

"""A close or tiering works in slices of time (agents/engine/closing.py `paced`): every
item is handed out once, in order, and other work on the event loop gets a turn as soon
as a slice's worth of time has gone into the items, whatever each item costs."""

from __future__ import annotations

import asyncio

import pytest

from agents.engine.closing import paced


@pytest.mark.parametrize(
    ("cost", "items", "turns"),
    [
        (0.0, 2000, 0),  # free items: never a turn in between
        (0.001, 60, 6),  # ten items a slice (the last turn after the 60th)
        (0.004, 20, 6),  # a slice is over after the third item
        (0.02, 5, 5),  # each item takes longer than a slice: a turn after every one
    ],
)
async def test_other_work_gets_a_turn_after_every_slice(
    cost: float, items: int, turns: int
) -> None:
    now = [0.0]
    between: list[int] = []  # the items handed out when the other work got its turns
    seen: list[int] = []
    stop = asyncio.Event()

    async def other_work() -> None:
        while not stop.is_set():
            await asyncio.sleep(0)
            between.append(len(seen))

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    between.clear()
    async for item in paced(range(items), slice_seconds=0.01, clock=lambda: now[0]):
        seen.append(item)
        now[0] += cost  # the synchronous work on the item
    stop.set()
    await other
    assert seen == list(range(items))
    assert len(set(between[:-1])) == turns  # the last: after the items were done

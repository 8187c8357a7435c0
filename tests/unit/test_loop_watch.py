"""The event-loop stall watch (agents/worker/loop_watch.py): a synchronous block shows in
the histogram with its length, and a long one gets a warning."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from agents.metrics import Metrics
from agents.worker.loop_watch import watch_event_loop


def test_a_blocked_loop_is_measured_and_a_long_block_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()

    async def run() -> None:
        watch = asyncio.create_task(watch_event_loop(metrics, interval=0.01))
        await asyncio.sleep(0.05)  # some timely wake-ups first
        time.sleep(0.6)  # noqa: ASYNC251 - on purpose: something synchronous holds the loop
        await asyncio.sleep(0.05)
        watch.cancel()

    with caplog.at_level(logging.WARNING, logger="agents.worker.loop_watch"):
        asyncio.run(run())
    samples = {
        s.labels["le"]: s.value
        for s in metrics.loop_stall.collect().samples
        if s.name.endswith("_bucket")
    }
    assert samples["0.5"] < samples["1.0"]  # the stall: between 0.5 and 1 s
    assert samples["0.005"] >= 2  # the timely ones
    stalls = [r for r in caplog.records if getattr(r, "event", None) == "event_loop_stalled"]
    assert len(stalls) == 1
    assert 0.5 <= stalls[0].seconds < 1.0  # type: ignore[attr-defined]


def test_the_stall_log_names_the_code_that_held_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def hold() -> None:
        time.sleep(0.6)

    async def run() -> None:
        watch = asyncio.create_task(watch_event_loop(Metrics(), interval=0.01))
        await asyncio.sleep(0.05)
        hold()
        await asyncio.sleep(0.05)
        watch.cancel()

    with caplog.at_level(logging.WARNING, logger="agents.worker.loop_watch"):
        asyncio.run(run())
    (stall,) = [r for r in caplog.records if getattr(r, "event", None) == "event_loop_stalled"]
    spot: str = stall.where  # type: ignore[attr-defined]
    assert spot.startswith("tests/unit/test_loop_watch.py:"), spot
    assert spot.endswith(" hold"), spot
    assert sum(stall.samples.values()) >= 10  # type: ignore[attr-defined]  # every 10 ms of 0.6 s


def test_where_names_the_engine_step_that_called_into_the_pure_logic() -> None:
    """A stack in streams/ (the pure logic) is named with the agents/ (or test) frame
    that called it, so a stall in a shared function says which step it held."""
    import sys

    from agents.worker.loop_watch import where
    from streams.units import day_of

    spots: list[str] = []

    def trace(frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code.co_name == "day_of":
            spots.append(where(frame))
        return None

    sys.setprofile(trace)
    try:
        day_of(0)
    finally:
        sys.setprofile(None)
    (spot,) = spots
    caller, own = spot.split(" > ")
    assert caller.startswith("tests/unit/test_loop_watch.py:"), spot
    assert caller.endswith(" test_where_names_the_engine_step_that_called_into_the_pure_logic")
    assert own.startswith("streams/units.py:"), spot
    assert own.endswith(" day_of"), spot


def test_full_garbage_collections_are_timed() -> None:
    import gc

    from agents.worker.loop_watch import FullCollections

    metrics = Metrics()
    with FullCollections(metrics):
        gc.collect(0)  # a young one: not counted
        gc.collect()
    assert metrics.gc_pause.count == 1
    assert gc.callbacks == [c for c in gc.callbacks if "FullCollections" not in repr(c)]


def test_a_stall_in_a_garbage_collection_is_named_so(caplog: pytest.LogCaptureFixture) -> None:
    """A collection holds the GIL, so the watchdog can only look when it ends: the spot
    is then the collection's timing callback, reported as the collection."""
    import gc

    from agents.worker.loop_watch import GARBAGE_COLLECTION

    heap = [[i] for i in range(3_000_000)]  # a collection of this takes a while

    def another_librarys(phase: str, info: dict[str, int]) -> None:
        """Runs first as a collection ends (hypothesis installs one like it)."""
        if phase == "stop":
            sum(range(20_000))

    async def run() -> None:
        watch = asyncio.create_task(watch_event_loop(Metrics(), interval=0.01, logged=0.05))
        await asyncio.sleep(0.05)
        gc.collect()
        await asyncio.sleep(0.05)
        watch.cancel()

    gc.callbacks.insert(0, another_librarys)
    try:
        with caplog.at_level(logging.WARNING, logger="agents.worker.loop_watch"):
            asyncio.run(run())
    finally:
        gc.callbacks.remove(another_librarys)
    del heap
    (stall,) = [r for r in caplog.records if getattr(r, "event", None) == "event_loop_stalled"]
    assert stall.where == GARBAGE_COLLECTION  # type: ignore[attr-defined]


def test_a_full_collection_freezes_its_survivors_when_asked() -> None:
    """gc_freeze: the survivors of a full collection leave the collector's sight (the next
    one does not scan them again); garbage is still freed."""
    import gc
    import weakref

    from agents.worker.loop_watch import FullCollections

    class Node:
        pass

    metrics = Metrics()
    try:
        with FullCollections(metrics, freeze=True) as collections:
            kept = [Node() for _ in range(1000)]
            gc.collect()
            assert collections.freeze_due
            collections.maybe_freeze()
            assert not collections.freeze_due
            assert gc.get_freeze_count() >= len(kept)
            assert metrics.gc_freezes.values() == {(): 1.0}
            cycle = Node()
            cycle.self = cycle  # type: ignore[attr-defined]
            gone = weakref.ref(cycle)
            del cycle
            gc.collect()  # garbage made after the freeze is still collected
            assert gone() is None
        with FullCollections(metrics, freeze=False) as plain:
            gc.collect()
            assert not plain.freeze_due
    finally:
        gc.unfreeze()

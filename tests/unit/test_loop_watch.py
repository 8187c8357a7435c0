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

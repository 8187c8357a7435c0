"""The event-loop stall watch (agents/worker/loop_watch.py): a synchronous block shows in
the histogram with its length, and a long one gets a warning."""

from __future__ import annotations

import asyncio
import logging
import time

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

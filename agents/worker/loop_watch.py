"""How long something synchronous holds the worker's event loop (a close's chunk, a
ledger checkpoint, a commit's encoding): a timer due every `interval` seconds, and how
late it wakes. Everything on the loop waits that long, ticket priorities included."""

from __future__ import annotations

import asyncio
import logging

from agents.logs import Throttle
from agents.metrics import Metrics

log = logging.getLogger(__name__)

#: a stall this long gets a log line (at most one every 10 s, with the longest held back)
LOGGED_STALL_SECONDS = 0.5


async def watch_event_loop(metrics: Metrics, *, interval: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    throttle = Throttle(10.0)
    longest_held = 0.0
    while True:
        started = loop.time()
        await asyncio.sleep(interval)
        stall = max(0.0, loop.time() - started - interval)
        metrics.loop_stall.observe(stall)
        if stall < LOGGED_STALL_SECONDS:
            continue
        longest_held = max(longest_held, stall)
        allowed, held = throttle.allow("stall")
        if allowed:
            log.warning(
                "the event loop was held for %.2fs (%d more stalls over %.1fs held back, "
                "the longest %.2fs)",
                stall,
                held,
                LOGGED_STALL_SECONDS,
                longest_held,
                extra={"event": "event_loop_stalled", "seconds": round(stall, 3)},
            )
            longest_held = 0.0
